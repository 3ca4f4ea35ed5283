"""The benchmarks' name for ``harness.procs`` (free port, health polling, stopping a server)."""

from harness.procs import ThreadServer, free_port, run_server, stop, wait_healthy

__all__ = ["ThreadServer", "free_port", "run_server", "stop", "wait_healthy"]
