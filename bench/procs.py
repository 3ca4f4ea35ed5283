"""Helpers for the servers that benchmarks and tests start: a free port, wait until one
answers, stop it.

Kept free of the app's imports so that both ``bench/`` and ``tests/`` can use it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


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
