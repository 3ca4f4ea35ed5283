"""Load and fault run: many clients streaming /generate against a zero-latency upstream.

The service runs as a subprocess (real uvicorn, API keys on, ``LOGPROBS_MAX_CONCURRENT``
set), its upstream is ``bench.zero_upstream`` in another subprocess, and the clients are
httpx async streams in this process, all with one key.

1. warm-up (``--warmup`` s), then the server's RSS, open fds, threads and asyncio tasks;
2. load: ``--clients`` clients stream ``/generate`` back to back for ``--duration`` s:
   errors (anything but a complete stream or a deliberate 429), p50/p99 time to the first
   ``data`` event, requests/s, and RSS after the run against after warm-up (target: 5%);
3. faults: the same load for ``--fault-duration`` s; the upstream is SIGKILLed half way and
   restarted ``--down`` s later. Every request must end, within the service's timeout,
   complete or with a typed error (``event: error`` or a JSON error with a ``type``); once
   the upstream is back, new requests must succeed; afterwards RSS, fds and tasks must be
   back where they were.

    python -m bench.bench_load [--clients 200 --duration 60 --warmup 10 --down 10]

Exits 1 when a check fails. Not a test: it takes about two and a half minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-load-key-0123456789"
HEADERS = {"X-API-Key": KEY}
BODY = {"input": {"prompt": "Count to three."}, "config": {"configurable": {"max_tokens": 64}}}
TIMEOUT = 10.0  # LOGPROBS_REQUEST_TIMEOUT of the service under test


# --- the server under test (``serve`` subcommand: the app plus a task counter) -------------


def serve(port: int) -> None:
    import uvicorn
    from fastapi.responses import JSONResponse

    from server import create_app

    app = create_app()

    async def tasks() -> JSONResponse:
        return JSONResponse({"tasks": len(asyncio.all_tasks())})

    app.add_api_route("/_bench/tasks", tasks, methods=["GET"], include_in_schema=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_upstream(port: int, token_delay: float = 0.0) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.zero_upstream", "--port", str(port)]
    cmd += ["--token-delay", str(token_delay)]
    return subprocess.Popen(cmd, cwd=ROOT)


def wait_ok(url: str, timeout: float = 60.0) -> None:
    if not wait_healthy(url, timeout):
        msg = f"{url} did not answer"
        raise RuntimeError(msg)


def proc_stats(pid: int, url: str) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    threads = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads")
    )
    tasks = httpx.get(url + "/_bench/tasks", headers=HEADERS, timeout=10).json()["tasks"]
    return {
        "rss_mb": rss_kb / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
        "tasks": tasks,
    }


# --- clients ------------------------------------------------------------------------------


@dataclass
class Tally:
    ok: int = 0
    limited: int = 0
    typed: dict[str, int] = field(default_factory=dict)
    untyped: list[str] = field(default_factory=list)
    first_event: list[float] = field(default_factory=list)
    longest: float = 0.0
    ok_after: dict[float, int] = field(default_factory=dict)

    def typed_error(self, kind: str) -> None:
        self.typed[kind] = self.typed.get(kind, 0) + 1


async def one_stream(client: httpx.AsyncClient, url: str, tally: Tally, t0: float) -> None:
    start = time.monotonic()
    first: float | None = None
    event = ""
    outcome = "untyped: stream ended without an end event"
    try:
        async with client.stream("POST", url + "/generate/stream", json=BODY) as response:
            if response.status_code == 429:
                tally.limited += 1
                await response.aread()
                return
            if response.status_code != 200:
                body = await response.aread()
                try:
                    tally.typed_error(json.loads(body)["error"]["type"])
                except (ValueError, KeyError, TypeError):
                    tally.untyped.append(f"status {response.status_code}")
                return
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:].strip()
                    if event == "data" and first is None:
                        first = time.monotonic() - start
                    if event == "end":
                        outcome = "ok"
                elif line.startswith("data: ") and event == "error":
                    try:
                        outcome = "typed:" + json.loads(line[6:])["type"]
                    except (ValueError, KeyError, TypeError):
                        outcome = "untyped: error event without a type"
    except httpx.HTTPError as exc:
        outcome = f"untyped: {type(exc).__name__}"
    finally:
        tally.longest = max(tally.longest, time.monotonic() - start)
    if outcome == "ok":
        tally.ok += 1
        if first is not None:
            tally.first_event.append(first)
        second = float(int(start - t0))  # by when the request started
        tally.ok_after[second] = tally.ok_after.get(second, 0) + 1
    elif outcome.startswith("typed:"):
        tally.typed_error(outcome[6:])
    else:
        tally.untyped.append(outcome)


async def load(url: str, clients: int, duration: float, faults: Any = None) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(TIMEOUT * 4, connect=10)
    t0 = time.monotonic()
    async with httpx.AsyncClient(headers=HEADERS, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            while time.monotonic() - t0 < duration:
                await one_stream(client, url, tally, t0)

        jobs = [worker() for _ in range(clients)]
        if faults is not None:
            jobs.append(faults(t0))
        await asyncio.gather(*jobs)
    return tally


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", headers=HEADERS, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="load and fault run against a zero upstream")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--fault-duration", type=float, default=60.0)
    parser.add_argument("--down", type=float, default=10.0)
    parser.add_argument(
        "--fault-token-delay",
        type=float,
        default=0.02,
        help="seconds between the upstream's tokens in the fault run, so streams are open "
        "when it dies",
    )
    args = parser.parse_args()

    up_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{up_port}/v1",
        "OPENAI_API_KEY": "zero",
        "LOGPROBS_API_KEYS": KEY,
        "LOGPROBS_MAX_CONCURRENT": str(args.clients),
        "LOGPROBS_REQUEST_TIMEOUT": str(TIMEOUT),
        "LOGPROBS_MODEL": "zero-upstream",
    }
    upstream = start_upstream(up_port)
    cmd = [sys.executable, "-m", "bench.bench_load", "serve", str(port)]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    failures: list[str] = []
    try:
        wait_ok(f"http://127.0.0.1:{up_port}/health")
        wait_ok(url + "/healthz")
        print(f"server pid {server.pid}, {args.clients} clients, upstream: bench.zero_upstream")

        warm = asyncio.run(load(url, args.clients, args.warmup))
        time.sleep(1)
        after_warmup = proc_stats(server.pid, url)
        print(f"warm-up {args.warmup:.0f} s: {warm.ok} streams; server {after_warmup}")

        tokens_before = metric(url, "logprobs_tokens_generated_total")
        t = time.monotonic()
        run = asyncio.run(load(url, args.clients, args.duration))
        elapsed = time.monotonic() - t
        time.sleep(1)
        after_load = proc_stats(server.pid, url)
        tokens = metric(url, "logprobs_tokens_generated_total") - tokens_before
        rss_ratio = after_load["rss_mb"] / after_warmup["rss_mb"]
        errors = len(run.untyped) + sum(run.typed.values())
        print(f"\n== load: {args.clients} clients streaming /generate for {args.duration:.0f} s")
        print(f"complete streams      {run.ok} ({run.ok / elapsed:.0f}/s)")
        print(f"deliberate 429s       {run.limited}")
        print(f"errors                {errors} {run.typed} {sorted(set(run.untyped))[:5]}")
        print(
            f"time to first event   p50 {pct(run.first_event, 0.5) * 1000:.0f} ms, "
            f"p99 {pct(run.first_event, 0.99) * 1000:.0f} ms, "
            f"max {max(run.first_event, default=0) * 1000:.0f} ms"
        )
        print(f"tokens (/metrics)     {tokens:.0f} ({tokens / elapsed:.0f}/s)")
        print(
            f"server RSS            {after_warmup['rss_mb']:.1f} MB after warm-up, "
            f"{after_load['rss_mb']:.1f} MB after the run (ratio {rss_ratio:.3f})"
        )
        print(f"server after the run  {after_load}")
        if errors:
            failures.append(f"load: {errors} errors")
        if not 0.95 <= rss_ratio <= 1.05:
            failures.append(f"load: RSS ratio {rss_ratio:.3f}")

        # faults: kill the upstream a third of the way in, restart it --down s later
        marks: dict[str, float] = {}

        async def faults(t0: float) -> None:
            nonlocal upstream
            await asyncio.sleep(args.fault_duration / 2)
            upstream.send_signal(signal.SIGKILL)
            upstream.wait()
            marks["killed"] = time.monotonic() - t0
            await asyncio.sleep(args.down)
            upstream = start_upstream(up_port, args.fault_token_delay)
            await asyncio.to_thread(wait_ok, f"http://127.0.0.1:{up_port}/health")
            marks["back"] = time.monotonic() - t0

        # The zero upstream answers in one write: pace it, so streams are open when it dies.
        upstream.terminate()
        upstream.wait()
        upstream = start_upstream(up_port, args.fault_token_delay)
        wait_ok(f"http://127.0.0.1:{up_port}/health")
        before = proc_stats(server.pid, url)
        fault = asyncio.run(load(url, args.clients, args.fault_duration, faults))
        time.sleep(2)
        after = proc_stats(server.pid, url)
        ok_after_back = sum(n for s, n in fault.ok_after.items() if s > marks["back"] + 1)
        ok_before_kill = sum(n for s, n in fault.ok_after.items() if s < marks["killed"] - 1)
        killed, back = marks["killed"], marks["back"]
        print(f"\n== faults: upstream killed at {killed:.1f} s, back at {back:.1f} s")
        print(f"complete streams      {fault.ok} ({ok_before_kill} started before the kill, "
              f"{ok_after_back} started 1 s after it was back or later)")  # fmt: skip
        print(f"typed errors          {fault.typed}")
        print(f"untyped errors        {len(fault.untyped)} {sorted(set(fault.untyped))[:5]}")
        print(f"deliberate 429s       {fault.limited}")
        print(f"longest request       {fault.longest:.1f} s (service timeout {TIMEOUT:.0f} s)")
        print(f"server before         {before}")
        print(f"server after          {after}")
        if fault.untyped:
            failures.append(f"faults: {len(fault.untyped)} requests without a typed error")
        if not fault.typed:
            failures.append("faults: the outage produced no typed error")
        if fault.longest > TIMEOUT * 3 + 5:
            failures.append(f"faults: a request took {fault.longest:.1f} s")
        if ok_after_back == 0:
            failures.append("faults: no request succeeded once the upstream was back")
        if after["tasks"] > before["tasks"] + 2 or after["fds"] > before["fds"] + 5:
            failures.append("faults: tasks or fds leaked")
        if after["rss_mb"] > before["rss_mb"] * 1.05:
            failures.append(f"faults: RSS grew {after['rss_mb'] / before['rss_mb']:.3f}x")
        print(
            f"open requests (gauge) {metric(url, 'logprobs_requests_in_flight'):.0f} (the scrape)"
        )
    finally:
        for proc in (server, upstream):
            stop(proc, 10)
    print("\nchecks:", "all passed" if not failures else "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(main())
