"""Run an ASGI app under a real uvicorn server in a thread, on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from bench.procs import free_port as free_port  # the tests import it from here
from bench.procs import wait_healthy


class ThreadServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to pytest."""

    def install_signal_handlers(self) -> None:
        pass


@contextmanager
def run_server(
    app: Any, port: int | None = None, health: str = "/healthz", timeout: float = 120.0
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yield its base URL once ``health`` answers 200."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = ThreadServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url + health, timeout, alive=thread.is_alive, interval=0.1):
        server.should_exit = True
        msg = f"server on {url} did not become healthy"
        raise RuntimeError(msg)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def stream_then_drop(url: str, body: Any, events: int, timeout: float = 60.0) -> float:
    """POST ``body`` to the stream ``url``, read ``events`` data events, then hang up.

    Returns the monotonic time at which the connection was dropped.

    Raises:
        AssertionError: the stream ended before ``events`` data events.
    """
    seen = 0
    with httpx.stream("POST", url, json=body, timeout=timeout) as response:
        for line in response.iter_lines():
            if line.startswith("event: data"):
                seen += 1
                if seen == events:
                    break
    assert seen == events, f"the stream ended after {seen} of {events} data events"
    return time.monotonic()
