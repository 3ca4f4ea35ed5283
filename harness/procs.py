"""Helpers for the servers that benchmarks and tests start: a free port, wait until one
answers, stop it, or run an ASGI app under uvicorn in a thread.

Kept free of the app's imports; ``bench/`` and ``tests/`` both import it from here.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    url: str, timeout: float, *, alive: Callable[[], bool] | None = None, interval: float = 0.2
) -> bool:
    """Poll ``url`` until it answers 200 (True), ``timeout`` s pass or ``alive()`` is false.

    ``alive`` says whether the server can still come up (its process or thread is running).
    """
    deadline = time.monotonic() + timeout
    while alive is None or alive():
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return False


def stop(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM ``proc``; SIGKILL it if it has not exited after ``grace`` s; reap it either way."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class ThreadServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its caller (pytest, a bench)."""

    def install_signal_handlers(self) -> None:
        pass


@contextmanager
def run_server(
    app: Any, port: int | None = None, health: str = "/healthz", timeout: float = 120.0
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a thread; yield its base URL once ``health`` answers 200."""
    port = port or free_port()
    # A handler still running at exit (a fault that sleeps for a minute) is cancelled after
    # 2 s instead of holding the shutdown, and with it the next test, until it returns.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
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
