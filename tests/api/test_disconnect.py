"""A client that drops a stream makes the server close its upstream request."""

from __future__ import annotations

import time
from typing import Any

from server import create_app
from tests.api.conftest import make_settings
from tests.servers import run_server, stream_then_drop


def test_dropped_stream_closes_the_upstream_request(fake_upstream: Any):
    # A real uvicorn server: only a real socket shows a client going away.
    settings = make_settings(fake_upstream, request_timeout=30.0)
    before = len(fake_upstream.state.closed)
    body = {"input": {"prompt": "go"}, "config": {"configurable": {"model": "slow"}}}
    with run_server(create_app(settings)) as url:
        dropped_at = stream_then_drop(url + "/generate/stream", body, events=3, timeout=30)
        deadline = dropped_at + 5.0
        while len(fake_upstream.state.closed) == before and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(fake_upstream.state.closed) == before + 1, "upstream stream never closed"
    # The upstream would have streamed for 10 s; it was closed within half a second.
    lag = fake_upstream.state.closed[-1] - dropped_at
    assert lag < 0.5, f"upstream closed {lag:.3f} s after the client left"
