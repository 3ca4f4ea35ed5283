"""Benchmark of continuous batching in the embedded model server (prints results; not a test).

Through HTTP (real uvicorn, ``/v1/chat/completions``), 64 tokens each with ``top_logprobs=5``,
temperature 0, all requests sent at once. Two servers run side by side in one process, the
batched engine and the deterministic one (every sequence decoded on its own); each measurement
alternates between them so both see the same machine load:

(a) aggregate tok/s at 1, 4 and 8 concurrent requests, and the ratio to one stream;
(b) time to first token of a new request while 7 others stream, against its time alone
    (medians of 3), through HTTP and on the engine itself;
(c) the largest logprob difference (chosen token and top 5) between a request served alone
    and the same request served among 7 others;
(d) single-stream speed against llama-cpp-python's ``Llama`` in-process (same GGUF, thread
    count and token count, no logprobs): today's engine measured 0.989 of it (README).

Run: ``.venv/bin/python -m bench.bench_batching [--tokens 64]``.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.procs import run_server
from local_llm import LocalEngine, SamplingParams, create_local_app
from local_llm.engine_api import TextDelta

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


def ttft_under_load(url: str, tokens: int) -> tuple[float, float]:
    """Time to first token of a new request alone, then while 7 others stream."""
    probe = _body(PROMPTS[0], 8, stream=True)
    alone = sorted(_first_token(url, probe) for _ in range(3))[1]
    stop = threading.Event()
    started = threading.Barrier(8)

    def background(prompt: str) -> None:
        started.wait()
        while not stop.is_set():
            _complete(url, _body(prompt, tokens))

    threads = [threading.Thread(target=background, args=(p,)) for p in PROMPTS[1:]]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(1.5)  # the 7 are streaming
    loaded = sorted(_first_token(url, probe) for _ in range(3))[1]
    stop.set()
    for thread in threads:
        thread.join()
    return alone, loaded


def engine_ttft_under_load(engine: LocalEngine, tokens: int) -> tuple[float, float]:
    """As ``ttft_under_load`` but on the engine itself (no HTTP, no event loop)."""
    probe = engine.tokenize_chat([("user", PROMPTS[0])])
    params = SamplingParams(max_tokens=4, temperature=0.0, top_logprobs=5)

    def first() -> float:
        start = time.perf_counter()
        for event in engine.generate("probe", probe, params, threading.Event()):
            if isinstance(event, TextDelta) and event.text:
                return time.perf_counter() - start
        msg = "no token came"
        raise RuntimeError(msg)

    alone = sorted(first() for _ in range(3))[1]
    stop = threading.Event()

    def background(prompt: str) -> None:
        tokens_in = engine.tokenize_chat([("user", prompt)])
        busy = SamplingParams(max_tokens=tokens, temperature=0.0, top_logprobs=5, ignore_eos=True)
        while not stop.is_set():
            for _ in engine.generate("bg", tokens_in, busy, stop):
                pass

    threads = [threading.Thread(target=background, args=(p,)) for p in PROMPTS[1:]]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    loaded = sorted(first() for _ in range(3))[1]
    stop.set()
    for thread in threads:
        thread.join()
    return alone, loaded


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


def direct_rate(tokens: int) -> float:
    """tok/s of llama-cpp-python's ``Llama`` in-process on the bench's first prompt."""
    from llama_cpp import Llama

    from local_llm.model_file import default_model_path
    from local_llm.prompt import gemma_segments, render

    llm = Llama(model_path=default_model_path(), n_ctx=1024, n_threads=1, verbose=False)
    prompt = render(gemma_segments([("user", PROMPTS[0])])).removeprefix("<bos>")
    rates: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        out: Any = llm(prompt, max_tokens=tokens, temperature=0.0)
        rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - start))
    llm.close()
    return sorted(rates)[1]


def http_rate(url: str, tokens: int) -> float:
    """tok/s of one request without logprobs through HTTP (median of 3)."""
    body = {**_body(PROMPTS[0], tokens), "logprobs": False, "top_logprobs": None}
    return sorted(tokens / _complete_plain(url, body) for _ in range(3))[1]


def _complete_plain(url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    assert reply.json()["usage"]["completion_tokens"] == body["max_tokens"]
    return time.perf_counter() - start


def main() -> None:
    """Run both modes side by side, print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    n = args.tokens
    names = ("batched", "deterministic")
    engines = [
        LocalEngine(n_ctx=1024, parallel=8, deterministic=mode == "deterministic", selftest=False)
        for mode in names
    ]
    modes: dict[str, dict[str, Any]] = {name: {} for name in names}
    with contextlib.ExitStack() as stack:
        for engine in engines:
            stack.callback(engine.close)
        urls = [
            stack.enter_context(run_server(create_local_app(e), health="/health")) for e in engines
        ]
        for url in urls:
            _complete(url, _body(PROMPTS[0], 8))  # warm-up
        for k in (1, 4, 8):
            for name, url in zip(names, urls, strict=True):
                modes[name][f"tps{k}"], modes[name][f"slow{k}"] = throughput(url, k, n)
        for name, url in zip(names, urls, strict=True):
            modes[name]["ttft_alone"], modes[name]["ttft_loaded"] = ttft_under_load(url, n)
        for name, engine in zip(names, engines, strict=True):
            modes[name]["e_alone"], modes[name]["e_loaded"] = engine_ttft_under_load(engine, n)
        for name, url in zip(names, urls, strict=True):
            modes[name]["drift"], modes[name]["same_tokens"] = logprob_drift(url, n)
        ours = http_rate(urls[0], n)
    direct = direct_rate(n)
    base = modes["batched"]["tps1"]
    print(f"(a) {n} tokens each, top_logprobs=5, temperature 0, sent at once")
    print("| mode | concurrent | aggregate tok/s | vs one stream | slowest request |")
    print("|---|---|---|---|---|")
    for name, m in modes.items():
        for k in (1, 4, 8):
            tps, slow = m[f"tps{k}"], m[f"slow{k}"]
            print(f"| {name} | {k} | {tps:.1f} | {tps / base:.2f} | {slow:.1f} s |")
    print("    goals: 4 concurrent >= 4x one stream, 8 >= 6x")
    print("(b) time to first token of a new request (median of 3)")
    for name, m in modes.items():
        alone, loaded = m["ttft_alone"], m["ttft_loaded"]
        print(
            f"    {name:13s}: alone {alone * 1000:.0f} ms, while 7 stream "
            f"{loaded * 1000:.0f} ms ({loaded / alone:.2f}x; goal <= 2x)"
        )
    for name, m in modes.items():
        alone, loaded = m["e_alone"], m["e_loaded"]
        print(
            f"    {name:13s}: engine alone {alone * 1000:.0f} ms, while 7 stream "
            f"{loaded * 1000:.0f} ms ({loaded / alone:.2f}x; no HTTP)"
        )
    print("(c) largest logprob difference, one request alone vs among 7 others")
    for name, m in modes.items():
        print(f"    {name:13s}: {m['drift']:.4g} nats, same tokens: {m['same_tokens']}")
    print(f"(d) one stream, {n} tokens, no logprobs")
    print(f"    HTTP (batched engine)        : {ours:.1f} tok/s")
    print(f"    llama-cpp-python in-process  : {direct:.1f} tok/s")
    print(f"    ratio                        : {ours / direct:.3f} (today's engine: 0.989)")


if __name__ == "__main__":
    main()
