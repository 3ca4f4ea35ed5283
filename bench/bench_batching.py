"""Benchmark of continuous batching in the embedded model server (prints results; not a test).

Each mode is a server process (``python -m local_llm``) on its own port, all up at once;
every measurement alternates between them so all see the same machine load. Through HTTP
(``/v1/chat/completions``), 64 tokens each with ``top_logprobs=5``, temperature 0, sent at once:

(a) aggregate tok/s at 1, 4 and 8 concurrent requests, per mode: ``today`` (the engine and
    llama.cpp build before issue 17: flash attention, repacked weights, tiled and llamafile
    kernels; only with ``--today DIR``), ``invariant`` (the default), ``invariant-2t``
    (``LOCAL_N_THREADS=2``), ``deterministic`` (``LOCAL_DETERMINISTIC``);
(b) the ceiling the decode step allows, n x step(1) / step(n), timed in this process on the
    invariant kernels (``llama_decode`` of n rows of n sequences, logits for every row), in
    the same run;
(c) the largest logprob difference (chosen token and top 5) between a request served alone
    and the same request among 7 others.

``--today DIR``: a copy of the earlier engine and wheel, made once with
``git archive 95935c3 local_llm | tar -x -C DIR`` and
``pip install --no-deps --target DIR/site <the wheel built without -DGGML_LLAMAFILE=OFF>``.

Run: ``.venv/bin/python -m bench.bench_batching [--tokens 64] [--today DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.procs import free_port, stop, wait_healthy

PROMPTS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain how a bicycle works to a child.",
    "Describe a walk through a city market in the morning.",
    "Tell the history of a small fishing village.",
    "Write a letter from a lighthouse keeper to a friend.",
    "Describe how to plant a vegetable garden.",
    "Tell a story about a robot that learns to paint.",
    "Explain why the sea is salty.",
]


def _body(prompt: str, tokens: int, *, stream: bool = False) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 5,
        "ignore_eos": True,
        "stream": stream,
    }


def _complete(url: str, body: dict[str, Any]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    return time.perf_counter() - start, reply.json()["choices"][0]["logprobs"]["content"]


def _first_token(url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as s:
        for line in s.iter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"role"' not in line:
                return time.perf_counter() - start
    msg = "no token arrived"
    raise RuntimeError(msg)


def throughput(url: str, n: int, tokens: int) -> tuple[float, float]:
    """Aggregate tok/s and the slowest request's seconds for ``n`` requests sent at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda p: _complete(url, _body(p, tokens)), PROMPTS[:n]))
    wall = time.perf_counter() - start
    return n * tokens / wall, max(r[0] for r in results)


def logprob_drift(url: str, tokens: int) -> tuple[float, bool]:
    """Largest |logprob| difference of one request alone vs among 7 others; same tokens?"""
    _, alone = _complete(url, _body(PROMPTS[0], tokens))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: _complete(url, _body(p, tokens)), PROMPTS))
    among = results[0][1]
    same = [e["token"] for e in alone] == [e["token"] for e in among]
    worst = 0.0
    for a, b in zip(alone, among, strict=False):
        if a["token"] != b["token"]:
            break
        worst = max(worst, abs(a["logprob"] - b["logprob"]))
        for x, y in zip(a["top_logprobs"], b["top_logprobs"], strict=True):
            if x["token"] == y["token"]:
                worst = max(worst, abs(x["logprob"] - y["logprob"]))
    return worst, same


def decode_steps(sizes: tuple[int, ...], repeats: int = 12) -> dict[int, float]:
    """Median seconds of one ``llama_decode`` of n rows (one token of each of n sequences,
    logits for every row) on the engine's context layout and kernels, sizes interleaved."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from local_llm.batch_invariance import choose_kernels, model_params
    from local_llm.model_file import default_model_path

    choose_kernels()
    model = LlamaModel(
        path_model=default_model_path(), params=model_params(llama_cpp), verbose=False
    )
    slots = max(sizes)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 1024 * slots, 64, 64
    params.n_seq_max, params.kv_unified, params.swa_full = slots, False, False
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.n_threads = params.n_threads_batch = max(1, (os.cpu_count() or 2) // 2)
    ctx = llama_cpp.llama_init_from_model(model.model, params)
    batch = llama_cpp.llama_batch_init(64, 0, 1)
    pos = [0] * slots

    def step(n: int) -> float:
        batch.n_tokens = n
        for i in range(n):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = 236761, pos[i], 1
            batch.seq_id[i][0], batch.logits[i] = i, True
            pos[i] += 1
        start = time.perf_counter()
        if llama_cpp.llama_decode(ctx, batch) != 0:
            msg = "llama_decode failed"
            raise RuntimeError(msg)
        return time.perf_counter() - start

    for _ in range(3):
        step(slots)  # warm-up, and every sequence has some context
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            times[n].append(step(n))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    model.close()
    return {n: float(np.median(t)) for n, t in times.items()}


@contextlib.contextmanager
def server(args: list[str], pythonpath: str | None = None) -> Any:
    """``python -m local_llm`` on a free port with ``args``; yields its URL."""
    port = free_port()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "local_llm", "--port", str(port), "--n-ctx", "1024", *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(f"{url}/health", 300, alive=lambda: proc.poll() is None):
            msg = f"server {args} did not come up"
            raise RuntimeError(msg)
        yield url
    finally:
        stop(proc, 10)


def main() -> None:
    """Run every mode side by side, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--today", type=Path, default=None, help="earlier engine and wheel")
    args = parser.parse_args()
    n = args.tokens
    modes: dict[str, tuple[list[str], str | None]] = {}
    if args.today is not None:
        today = args.today.resolve()
        modes["today"] = ([], f"{today / 'site'}:{today}")
    modes["invariant"] = ([], None)
    modes["invariant-2t"] = (["--n-threads", "2"], None)
    modes["deterministic"] = (["--deterministic"], None)
    results: dict[str, dict[str, Any]] = {name: {} for name in modes}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(server(a, pp)) for name, (a, pp) in modes.items()}
        for url in urls.values():
            _complete(url, _body(PROMPTS[0], 8))  # warm-up
        for k in (1, 4, 8):
            for name, url in urls.items():
                results[name][f"tps{k}"], results[name][f"slow{k}"] = throughput(url, k, n)
        for name, url in urls.items():
            results[name]["drift"], results[name]["same_tokens"] = logprob_drift(url, n)
    steps = decode_steps((1, 4, 8))
    load = os.getloadavg()
    print(f"load average during the run (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"(a) {n} tokens each, top_logprobs=5, temperature 0, sent at once")
    print("| mode | concurrent | aggregate tok/s | vs its one stream | slowest request |")
    print("|---|---|---|---|---|")
    for name, m in results.items():
        for k in (1, 4, 8):
            tps, slow = m[f"tps{k}"], m[f"slow{k}"]
            print(f"| {name} | {k} | {tps:.1f} | {tps / m['tps1']:.2f} | {slow:.1f} s |")
    print("(b) the decode step (invariant kernels, in-process, median of 12 interleaved)")
    for k, t in steps.items():
        ceiling = k * steps[1] / t
        print(
            f"    step({k}) = {t * 1000:.1f} ms; ceiling {k} x step(1) / step({k}) = {ceiling:.2f}x"
        )
    inv = results["invariant"]
    for k in (4, 8):
        ceiling = k * steps[1] / steps[k]
        speedup = inv[f"tps{k}"] / inv["tps1"]
        line = f"    invariant at {k}: {speedup:.2f}x its one stream"
        line += f" = {speedup / ceiling:.2f} of the ceiling"
        if "today" in results:
            line += f"; {inv[f'tps{k}'] / results['today'][f'tps{k}']:.2f} of today's tok/s"
        print(line)
    print("(c) largest logprob difference, one request alone vs among 7 others")
    for name, m in results.items():
        print(f"    {name:13s}: {m['drift']:.4g} nats, same tokens: {m['same_tokens']}")


if __name__ == "__main__":
    main()
