"""What our service layer costs against stock LangServe, on an upstream that answers at once.

Three subprocesses, each a real uvicorn server (one worker) on a free port:
``bench.zero_upstream`` (64 tokens, 5 alternatives each), the stock-LangServe baseline
(``bench.stock_langserve``: ``ChatOpenAI(...).bind(logprobs=True, top_logprobs=5)`` at
``/chat``) and our app (``server.create_app`` with ``OPENAI_BASE_URL`` at the zero upstream,
no keys, no limits, the access log on as ``python server.py`` has it, written to a file).

Measured in this process with httpx, in rounds; every round runs each cell for
``--seconds`` (the cells' order rotates from round to round, so that the machine's load
falls on all of them alike):

* invoke at concurrency 1 and 8: requests/s and p50 latency, for stock ``/chat``, our
  ``/chat`` and our ``/generate``;
* stream at concurrency 1: p50 time from sending the request to its first ``data`` event.

Ratios are against stock ``/chat`` measured in the same rounds.

    python -m bench.bench_service [--rounds 5 --seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bench_load import wait_ok
from bench.procs import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Count to three."
# The settings that would change what is measured: none of them set.
_UNSET = (
    "OPENAI_API_KEY",
    "LOGPROBS_API_KEYS",
    "LOGPROBS_MAX_CONCURRENT",
    "LOGPROBS_RATE_LIMIT",
    "LOGPROBS_METRICS_PORT",
    "LOGPROBS_CORS_ORIGINS",
    "LANGSMITH_API_KEY",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING_V2",
    "LANGCHAIN_API_KEY",
)


@dataclass(frozen=True)
class Target:
    """One route of one server, and the input it is sent."""

    name: str
    url: str
    body: dict[str, Any]


@dataclass
class Cell:
    """What one (target, mode) pair measured over all rounds."""

    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


# --- servers ------------------------------------------------------------------------------


def serve_ours(port: int) -> None:
    """``serve-ours`` subcommand: our app as ``python server.py`` runs it."""
    import uvicorn

    from langserve_logprobs.access_log import configure_access_log
    from server import create_app

    configure_access_log()
    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def subprocess_server(args: list[str], url: str, env: dict[str, str], log: Path) -> Iterator[str]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stderr=out)
        try:
            wait_ok(url + "/healthz" if "zero_upstream" not in args[1] else url + "/health")
            yield url
        finally:
            stop(proc, 10)


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[str, str]]:
    """The stock and our base URLs, both in front of one zero-latency upstream."""
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    up_port, stock_port, our_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    ours_env = {**env, "OPENAI_BASE_URL": upstream + "/v1"}
    up_args = ["-m", "bench.zero_upstream", "--port", str(up_port)]
    stock_args = ["-m", "bench.stock_langserve", "--port", str(stock_port)]
    stock_args += ["--upstream", upstream + "/v1"]
    our_args = ["-m", "bench.bench_service", "serve-ours", "--port", str(our_port)]
    with (
        subprocess_server(up_args, upstream, env, workdir / "upstream.log"),
        subprocess_server(
            stock_args, f"http://127.0.0.1:{stock_port}", env, workdir / "stock.log"
        ) as stock,
        subprocess_server(
            our_args, f"http://127.0.0.1:{our_port}", ours_env, workdir / "ours.log"
        ) as ours,
    ):
        yield stock, ours


# --- clients ------------------------------------------------------------------------------


async def invoke_loop(client: httpx.AsyncClient, target: Target, until: float, cell: Cell) -> None:
    url = target.url + "/invoke"
    while time.perf_counter() < until:
        start = time.perf_counter()
        response = await client.post(url, json=target.body)
        took = time.perf_counter() - start
        if response.status_code != 200:
            cell.errors += 1
            continue
        cell.requests += 1
        cell.latencies.append(took)


async def first_event(client: httpx.AsyncClient, target: Target) -> float | None:
    """Seconds to the first ``data`` event; the stream is read to its end."""
    start = time.perf_counter()
    first: float | None = None
    ended = False
    async with client.stream("POST", target.url + "/stream", json=target.body) as response:
        if response.status_code != 200:
            await response.aread()
            return None
        async for line in response.aiter_lines():
            if first is None and line.startswith("event: data"):
                first = time.perf_counter() - start
            ended = ended or line.startswith("event: end")
    return first if ended else None


async def run_invoke(
    client: httpx.AsyncClient, target: Target, concurrency: int, seconds: float, cell: Cell
) -> None:
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(invoke_loop(client, target, until, cell) for _ in range(concurrency)))
    cell.seconds += time.perf_counter() - start


async def run_stream(client: httpx.AsyncClient, target: Target, seconds: float, cell: Cell) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        took = await first_event(client, target)
        if took is None:
            cell.errors += 1
        else:
            cell.requests += 1
            cell.latencies.append(took)


async def check(client: httpx.AsyncClient, target: Target) -> None:
    """One invoke must answer 200 with the upstream's 64 tokens, or the run is void."""
    response = await client.post(target.url + "/invoke", json=target.body)
    response.raise_for_status()
    output = response.json()["output"]
    tokens = output["response_metadata"]["logprobs"] if "response_metadata" in output else output
    count = len(tokens["content"] if "content" in tokens else tokens["tokens"])
    if count != 64:
        msg = f"{target.name}: {count} tokens, expected 64"
        raise RuntimeError(msg)


async def measure(targets: list[Target], rounds: int, seconds: float) -> dict[str, Cell]:
    modes = ("c1", "c8", "stream")
    cells = {f"{t.name} {m}": Cell() for t in targets for m in modes}
    plan = [(t, m) for t in targets for m in modes]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for target in targets:
            await check(client, target)
            for _ in range(20):  # warm-up: caches, connections, capability detection
                await client.post(target.url + "/invoke", json=target.body)
                await first_event(client, target)
        for r in range(rounds):
            shift = r % len(plan)
            for target, mode in plan[shift:] + plan[:shift]:
                cell = cells[f"{target.name} {mode}"]
                if mode == "stream":
                    await run_stream(client, target, seconds / 2, cell)
                else:
                    await run_invoke(client, target, 1 if mode == "c1" else 8, seconds, cell)
    return cells


# --- report -------------------------------------------------------------------------------


def _rate(cell: Cell, base: Cell | None) -> str:
    ratio = "" if base is None else f" ({cell.rate / base.rate:.2f}x)"
    return f"{cell.rate:.1f} req/s{ratio}, p50 {cell.p50_ms:.1f} ms"


def _first_event(cell: Cell, base: Cell | None) -> str:
    delta = "" if base is None else f" ({cell.p50_ms - base.p50_ms:+.1f} ms)"
    return f"{cell.p50_ms:.1f} ms{delta}"


def table(targets: list[Target], cells: dict[str, Cell]) -> str:
    stock = targets[0].name
    names = [t.name for t in targets]

    def row(label: str, mode: str, show: Callable[[Cell, Cell | None], str]) -> str:
        base = cells[f"{stock} {mode}"]
        shown = [show(cells[f"{n} {mode}"], None if n == stock else base) for n in names]
        return f"| {label} | " + " | ".join(shown) + " |"

    lines = [
        "| concurrency | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
        row("1", "c1", _rate),
        row("8", "c8", _rate),
        row("first stream event, p50", "stream", _first_event),
    ]
    errors = {k: c.errors for k, c in cells.items() if c.errors}
    if errors:
        lines.append(f"errors: {errors}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "serve-ours"])
    parser.add_argument("--port", type=int, default=0, help="serve-ours: the port")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per cell and round")
    args = parser.parse_args()
    if args.command == "serve-ours":
        serve_ours(args.port)
        return
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as (stock, ours):
        targets = [
            Target("stock /chat", stock + "/chat", {"input": PROMPT}),
            Target("our /chat", ours + "/chat", {"input": PROMPT}),
            Target("our /generate", ours + "/generate", {"input": {"prompt": PROMPT}}),
        ]
        cells = asyncio.run(measure(targets, args.rounds, args.seconds))
    load = os.getloadavg()[0]
    print(
        f"bench_service: {args.rounds} rounds x {args.seconds:g} s per cell (cells alternate "
        f"within each round, their order rotating), load average {load:.1f}"
    )
    print(table(targets, cells))


if __name__ == "__main__":
    main()
