"""Session fixtures: each real peer server, and our app started against it.

``peer`` is parametrized over the peers (and the embedded model, already running for the
other live tests), so every test in this folder runs once per backend. Session scope with
parameters keeps one peer alive at a time: the machine has 2 cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server import create_app
from tests.live.peers.servers import Peer, peer_server, peer_settings
from tests.servers import run_server


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("llama-server", id="llama-server"),
        pytest.param("llama-cpp-python", id="llama-cpp-python"),
        pytest.param("embedded", id="embedded"),
    ],
)
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """Our app served against one backend (the peer server is started for it)."""
    kind: str = request.param
    if kind == "embedded":
        url = request.getfixturevalue("live_url")
        yield Peer(kind, url, url + "/local")  # the embedded model is also served there
        return
    with peer_server(kind) as upstream, run_server(create_app(peer_settings(upstream))) as url:
        yield Peer(kind, url, upstream)
