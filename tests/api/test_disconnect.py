"""A client that drops a stream makes the server close its upstream request."""

from __future__ import annotations

import time
from typing import Any

import httpx

from server import create_app
from tests.api.conftest import make_settings
from tests.servers import run_server


def test_dropped_stream_closes_the_upstream_request(fake_upstream: Any):
    # A real uvicorn server: only a real socket shows a client going away.
    settings = make_settings(fake_upstream, request_timeout=30.0)
    before = len(fake_upstream.state.closed)
    body = {"input": {"prompt": "go"}, "config": {"configurable": {"model": "slow"}}}
    with run_server(create_app(settings)) as url:
        events = 0
        with httpx.stream("POST", url + "/generate/stream", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("event: data"):
                    events += 1
                    if events == 3:
                        break
        dropped_at = time.monotonic()
        deadline = dropped_at + 5.0
        while len(fake_upstream.state.closed) == before and time.monotonic() < deadline:
            time.sleep(0.01)
    assert events == 3
    assert len(fake_upstream.state.closed) == before + 1, "upstream stream never closed"
    # The upstream would have streamed for 10 s; it was closed within half a second.
    lag = fake_upstream.state.closed[-1] - dropped_at
    assert lag < 0.5, f"upstream closed {lag:.3f} s after the client left"
