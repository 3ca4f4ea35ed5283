"""Every way a LangChain client can call the logprob routes, through ``RemoteRunnable``.

``/generate``: invoke, batch, stream (events merged with ``merge_stream_events``, the
server's documented merge rule written out here), then ``astream`` and ``astream_events``
from asyncio; then ``/classify`` and ``/extract``. It needs only the client packages
(``langserve``, ``langchain-core``), not the server's code. Generations are kept short
(``max_tokens``) so the embedded CPU model answers in seconds.

    python client_examples/remote_runnable.py [http://127.0.0.1:8000]
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from typing import Any

from langchain_core.runnables import RunnableConfig
from langserve import RemoteRunnable

# With LOGPROBS_API_KEYS set on the server, every call sends a key (Authorization: Bearer).
API_KEY = os.environ.get("LOGPROBS_API_KEY")
HEADERS = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else None

CONFIG: RunnableConfig = {"configurable": {"max_tokens": 16, "temperature": 0, "top_logprobs": 3}}


def merge_stream_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge /generate stream events: completion concatenated, tokens appended, others last
    non-null."""
    merged: dict[str, Any] = {"completion": "", "tokens": []}
    for event in events:
        for key, value in event.items():
            if key == "completion":
                merged["completion"] += value or ""
            elif key == "tokens":
                merged["tokens"].extend(value or [])
            elif value is not None or key not in merged:
                merged[key] = value
    return merged


def fmt_prob(prob: float | None) -> str:
    return "   n/a" if prob is None else f"{prob:6.1%}"


def print_tokens(tokens: list[dict[str, Any]], limit: int = 12) -> None:
    """A table: each token, its probability and logprob, and the top alternatives."""
    print(f"  {'#':>3}  {'token':<16} {'prob':>6}  {'logprob':>8}  alternatives")
    for i, tok in enumerate(tokens[:limit]):
        logprob = "n/a" if tok["logprob"] is None else f"{tok['logprob']:.3f}"
        alts = ", ".join(
            f"{t['token']!r} {fmt_prob(t['prob']).strip()}" for t in tok["top_logprobs"]
        )
        print(f"  {i:>3}  {tok['token']!r:<16} {fmt_prob(tok['prob'])}  {logprob:>8}  {alts}")
    if len(tokens) > limit:
        print(f"  ... {len(tokens) - limit} more tokens")


def print_summary(out: dict[str, Any]) -> None:
    if "error" in out:  # a failed item of a batch comes back in its place
        print(f"  error: {out['error']['type']}: {out['error']['message']}")
        return
    stats = out["stats"]
    perplexity = "n/a" if stats["perplexity"] is None else f"{stats['perplexity']:.2f}"
    print(f"  completion: {out['completion']!r}")
    print(
        f"  {stats['num_tokens']} tokens, perplexity {perplexity}, "
        f"min prob {fmt_prob(stats['min_prob']).strip()}, finish_reason {out['finish_reason']}"
    )
    spans = ", ".join(f"{s['word']!r} ({s['min_prob']:.1%})" for s in out["low_confidence_spans"])
    print(f"  low-confidence words: {spans or 'none'}")


def run_generate(url: str) -> None:
    generate: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/generate", headers=HEADERS)
    question = {"prompt": "What is the capital of France? Answer in one sentence."}

    print("== /generate invoke")
    out = generate.invoke(question, CONFIG)
    print_summary(out)
    print_tokens(out["tokens"])

    print("\n== /generate batch (one output per input, in order)")
    prompts = ["Name a primary colour.", "Say hello in Spanish."]
    outputs = generate.batch([{"prompt": p} for p in prompts], CONFIG)
    for prompt, item in zip(prompts, outputs, strict=True):
        print(f"- {prompt}")
        print_summary(item)

    print("\n== /generate stream (text as it arrives, then the merged result)")
    events = []
    print("  ", end="")
    for event in generate.stream(question, CONFIG):
        events.append(event)
        print(event.get("completion", ""), end="", flush=True)
    print()
    merged = merge_stream_events(events)
    print(f"  {len(events)} events merged into {len(merged['tokens'])} tokens")
    print_summary(merged)


async def run_async(url: str) -> None:
    generate: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/generate", headers=HEADERS)
    question = {"prompt": "Give one word that rhymes with cat."}

    print("\n== /generate astream (asyncio)")
    events = [event async for event in generate.astream(question, CONFIG)]
    merged = merge_stream_events(events)
    for tok in merged["tokens"][:8]:
        print(f"  {tok['token']!r:<14} p={fmt_prob(tok['prob'])}  logprob={tok['logprob']}")

    print("\n== /generate astream_events (v2): the run's event kinds")
    kinds: Counter[str] = Counter()
    async for ev in generate.astream_events(question, CONFIG, version="v2"):
        kinds[ev["event"]] += 1
    print("  " + ", ".join(f"{kind} x{n}" for kind, n in kinds.items()))


def run_classify(url: str) -> None:
    print("\n== /classify invoke, with two solved examples (few-shot)")
    classify: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/classify", headers=HEADERS)
    text = "The battery died after two days and support never answered."
    examples = [
        {"text": "I loved it, fantastic!", "label": "positive"},
        {"text": "Awful, a waste of money.", "label": "negative"},
    ]
    out = classify.invoke({"text": text, "labels": ["positive", "negative"], "examples": examples})
    confidence = fmt_prob(out["confidence"]).strip()
    print(f"  {text!r}")
    print(f"  label {out['label']!r}, confidence {confidence}, coverage {out['coverage']:.1%}")
    for label, prob in out["distribution"].items():
        print(f"  {label:<10} {fmt_prob(prob)}  {'#' * round(prob * 40)}")


def run_extract(url: str) -> None:
    print("\n== /extract invoke")
    extract: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/extract", headers=HEADERS)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    out = extract.invoke({"text": "Ada Lovelace was 36 years old.", "schema": schema})
    print(f"  data: {out['data']}")
    for pointer, conf in out["confidence"].items():
        print(f"  {pointer or '/':<10} prob {fmt_prob(conf['prob'])}  tokens {conf['num_tokens']}")
    print(f"  min_prob: {fmt_prob(out['min_prob']).strip()}")


def run_score(url: str) -> None:
    print("\n== /score invoke: which continuation does the model prefer?")
    score: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/score", headers=HEADERS)
    out = score.invoke(
        {"context": "The capital of France is", "continuations": [" Paris.", " Rome."]}
    )
    for s in out["scores"]:
        print(
            f"  {s['continuation']!r:<10} sum_logprob {s['sum_logprob']:8.3f}  "
            f"probability {s['probability']:.3f}  rank {s['rank']}"
        )


def main() -> None:
    url = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    run_generate(url)
    asyncio.run(run_async(url))
    run_classify(url)
    run_extract(url)
    run_score(url)


if __name__ == "__main__":
    main()
