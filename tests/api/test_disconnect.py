"""A client that goes away makes the server close its upstream request, on every route kind.

A real uvicorn server: only a real socket shows a client going away.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server import create_app
from tests.helpers import fake_upstream_settings
from tests.servers import run_server, stream_then_drop

SLOW = {"configurable": {"model": "slow"}}  # the fake upstream streams for 10 s


@pytest.fixture
def url(fake_upstream: Any) -> Iterator[str]:
    with run_server(
        create_app(fake_upstream_settings(fake_upstream, request_timeout=30.0))
    ) as base:
        yield base


def wait_for_close(upstream: Any, before: int) -> float:
    """When the upstream saw its stream closed (waits up to 5 s)."""
    deadline = time.monotonic() + 5.0
    while len(upstream.state.closed) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(upstream.state.closed) == before + 1, "upstream stream never closed"
    return float(upstream.state.closed[-1])


def test_dropped_stream_closes_the_upstream_request(fake_upstream: Any, url: str):
    before = len(fake_upstream.state.closed)
    body = {"input": {"prompt": "go"}, "config": SLOW}
    dropped_at = stream_then_drop(url + "/generate/stream", body, events=3, timeout=30)
    lag = wait_for_close(fake_upstream, before) - dropped_at
    assert lag < 0.5, f"upstream closed {lag:.3f} s after the client left"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/generate/invoke", {"input": {"prompt": "go"}, "config": SLOW}, id="invoke"),
        pytest.param("/generate/batch", {"inputs": [{"prompt": "go"}], "config": SLOW}, id="batch"),
    ],
)
def test_client_giving_up_on_invoke_closes_the_upstream_request(
    fake_upstream: Any, url: str, path: str, body: dict[str, Any]
):
    # Stock LangServe would keep the upstream busy for the whole 10 s.
    before = len(fake_upstream.state.closed)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + path, json=body, timeout=1.0)
    gave_up_at = time.monotonic()
    lag = wait_for_close(fake_upstream, before) - gave_up_at
    assert lag < 0.5, f"upstream closed {lag:.3f} s after the client left"
