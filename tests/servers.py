"""Real servers for the tests: uvicorn in a thread (harness/procs.py), a stream dropped early."""

from __future__ import annotations

import time
from typing import Any

import httpx

# The tests import these from here; they live in harness/procs.py, which bench/ uses too.
from harness.procs import free_port as free_port
from harness.procs import run_server as run_server


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
