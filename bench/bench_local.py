"""Benchmark of the embedded model server (prints results; not a test).

(a) Cost of logprobs: 128 tokens at temperature 0 through ``LocalEngine.generate`` with
    ``top_logprobs=5`` vs without logprobs, alternating rounds, medians. Target ratio <= 1.10.
(b) Tokens/s through the HTTP server (real uvicorn, ``/v1/chat/completions``) vs
    llama-cpp-python called directly in-process on the same model and prompt.
(c) Our logprobs against llama-cpp-python's own ``logprobs`` path (what its server uses),
    same model, prompt and token count (32 by default: that path is slow).

Run: ``.venv/bin/python -m bench.bench_local [--rounds 7] [--tokens 128]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import httpx

from bench.procs import run_server
from local_llm import LocalEngine, SamplingParams, create_local_app
from local_llm.engine_api import Finished
from local_llm.prompt import gemma_segments, render

PROMPT = "Write a long story about a dragon who learns to bake bread. Use many details."


def engine_run(
    engine: LocalEngine, tokens: list[int], n: int, top_logprobs: int | None
) -> tuple[float, float]:
    """Wall and CPU seconds of this thread to generate ``n`` tokens through the engine.

    The model runs on the engine's scheduler thread; CPU time is this process's (the scheduler
    does the work), so it measures the work itself even when other processes share the cores.
    """
    params = SamplingParams(
        max_tokens=n, temperature=0.0, top_logprobs=top_logprobs, ignore_eos=True
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    finished = None
    for event in engine.generate("bench", tokens, params, threading.Event()):
        if isinstance(event, Finished):
            finished = event
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert finished is not None and finished.completion_tokens == n, finished
    return wall, cpu


def bench_logprobs(engine: LocalEngine, rounds: int, n: int) -> None:
    """(a) generation time with and without logprobs, alternating."""
    tokens = engine.tokenize_chat([("user", PROMPT)])
    engine_run(engine, tokens, n, None)  # warm-up
    plain: list[tuple[float, float]] = []
    with_lp: list[tuple[float, float]] = []
    for _ in range(rounds):
        plain.append(engine_run(engine, tokens, n, None))
        with_lp.append(engine_run(engine, tokens, n, 5))
    a, b = (statistics.median(w for w, _ in runs) for runs in (plain, with_lp))
    ca, cb = (statistics.median(c for _, c in runs) for runs in (plain, with_lp))
    print(f"(a) engine, {n} tokens, temperature 0, median of {rounds} alternating rounds")
    print(f"    without logprobs     : {a:.3f} s wall ({n / a:.1f} tok/s), {ca:.3f} s CPU")
    print(f"    logprobs, top 5      : {b:.3f} s wall ({n / b:.1f} tok/s), {cb:.3f} s CPU")
    print(f"    ratio                : {b / a:.3f} wall, {cb / ca:.3f} CPU  (target <= 1.10)")
    best = min(w for w, _ in with_lp) / min(w for w, _ in plain)
    print(f"    ratio of best runs   : {best:.3f} wall (least disturbed by other processes)")


def bench_http(engine: LocalEngine, rounds: int, n: int) -> None:
    """(b) tokens/s over HTTP vs llama-cpp-python in-process."""
    from llama_cpp import Llama

    from local_llm.model_file import default_model_path

    # The engine has no Llama object of its own: the same GGUF in a plain Llama, same threads.
    llm = Llama(model_path=default_model_path(), n_ctx=2048, n_threads=1, verbose=False)
    prompt = render(gemma_segments([("user", PROMPT)]))
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": n,
        "temperature": 0,
        "ignore_eos": True,
    }
    http_rates: list[float] = []
    stream_rates: list[float] = []
    direct_rates: list[float] = []
    with (
        run_server(create_local_app(engine), health="/health") as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        client.post("/v1/chat/completions", json=body).raise_for_status()  # warm-up
        for _ in range(rounds):
            start = time.perf_counter()
            reply = client.post("/v1/chat/completions", json=body)
            reply.raise_for_status()
            count = reply.json()["usage"]["completion_tokens"]
            http_rates.append(count / (time.perf_counter() - start))

            start = time.perf_counter()
            chunks = 0
            stream_body = {**body, "stream": True}
            with client.stream("POST", "/v1/chat/completions", json=stream_body) as events:
                for line in events.iter_lines():
                    chunks += line.startswith("data: {")
            stream_rates.append(n / (time.perf_counter() - start))

            start = time.perf_counter()
            out: Any = llm(prompt.removeprefix("<bos>"), max_tokens=n, temperature=0.0)
            count = out["usage"]["completion_tokens"]
            direct_rates.append(count / (time.perf_counter() - start))
    llm.close()
    h, st, d = (statistics.median(r) for r in (http_rates, stream_rates, direct_rates))
    print(f"(b) tokens/s, {n} tokens, temperature 0, median of {rounds} rounds")
    print(f"    HTTP /v1/chat/completions       : {h:.1f} tok/s")
    print(f"    HTTP, stream=true               : {st:.1f} tok/s")
    print(f"    llama-cpp-python in-process     : {d:.1f} tok/s")
    print(f"    ratio HTTP / direct             : {h / d:.3f}  (stream: {st / d:.3f})")


def bench_llama_cpp_logprobs(engine: LocalEngine, n: int) -> None:
    """(c) our top-5 logprobs vs llama-cpp-python's own logprobs path, ``n`` tokens."""
    from llama_cpp import Llama

    from local_llm.model_file import default_model_path

    tokens = engine.tokenize_chat([("user", PROMPT)])
    ours = min(engine_run(engine, tokens, n, 5)[0] for _ in range(2))
    # Its logprobs need every position's logits kept: a second instance, same weights.
    theirs_llm = Llama(
        model_path=default_model_path(), n_ctx=2048, logits_all=True, verbose=False, n_threads=1
    )
    prompt = render(gemma_segments([("user", PROMPT)])).removeprefix("<bos>")
    start = time.perf_counter()
    out: Any = theirs_llm.create_completion(prompt, max_tokens=n, temperature=0.0, logprobs=5)
    theirs = time.perf_counter() - start
    count = out["usage"]["completion_tokens"]
    first = out["choices"][0]["logprobs"]
    has_bytes = "bytes" in first
    theirs_llm.close()
    print(f"(c) logprobs top 5, {n} tokens, temperature 0")
    print(f"    ours (numpy on the raw logits)  : {ours:.3f} s ({n / ours:.1f} tok/s)")
    print(f"    llama-cpp-python logprobs=5     : {theirs:.3f} s ({count / theirs:.1f} tok/s)")
    print(f"    speed-up                        : {theirs / count * n / ours:.1f}x")
    print(f"    token bytes given               : ours yes, theirs {'yes' if has_bytes else 'no'}")


def main() -> None:
    """Load the model once and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--slow-tokens", type=int, default=32, help="tokens for part (c)")
    args = parser.parse_args()
    engine = LocalEngine(n_ctx=2048)
    engine.load()
    try:
        bench_logprobs(engine, args.rounds, args.tokens)
        bench_http(engine, args.rounds, args.tokens)
        bench_llama_cpp_logprobs(engine, args.slow_tokens)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
