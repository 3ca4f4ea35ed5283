"""Benchmark of Decisions (``POST /v1/decisions``), not a test: speed and calibration.

(a) **Several questions in one request.** One request with three questions (a 4-value
choice, a predicate, a 5-level score) about a ~100-token input, against the same three asked
one by one (three requests), each round on a new input so that nothing of it is cached
before the round starts. A third way asks one by one with the input's cache evicted before
each request (an untimed request about another text runs first): what one by one costs on a
server that keeps nothing from one request to the next. The order of the ways rotates from
round to round; the ratios of the medians are printed (goal: at most 0.5). Calibration is off
here (its content-free scoring is cached after the first request and would flatter neither
side).

(b) **Sentiment, zero-shot and 4-shot, raw and calibrated.** The 100 labelled sentences of
``bench/data/sentiment.jsonl`` as a ``choice`` question (``positive`` / ``negative``, the
question "What is the sentiment of this review?"), zero-shot and with the first 4 solved
examples of ``bench/data/sentiment_examples.jsonl`` (``examples``, our extension), each with
``calibration`` ``none`` and ``contextual``: accuracy, expected calibration error (10 bins,
on the chosen value's probability), Brier score (sum over the two values), mean coverage and
seconds per text, side by side.

Run: ``.venv/bin/python -m bench.bench_decisions [URL] [--rounds N] [--limit N]``. With no URL
it starts the app itself on a free port (the embedded model unless the environment names an
upstream).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.bench_classify import target

DATA = Path(__file__).resolve().parent / "data"
SENTIMENT_QUESTION = "What is the sentiment of this review?"
BINS = 10
SENTENCES = [
    "The shipment arrived two days late and the box was dented on one corner.",
    "Our support agent answered within minutes and fixed the login problem for good.",
    "The invoice lists a charge we never agreed to, for a plan we cancelled in March.",
    "The app crashes every time I open the settings page on my phone.",
    "Thanks to the new dashboard the whole team now sees the same numbers each morning.",
    "I asked three times for a refund and nobody has written back since last week.",
]
THREE_QUESTIONS: list[dict[str, Any]] = [
    {
        "type": "choice",
        "name": "team",
        "instructions": "Which team should handle this message?",
        "choices": [
            {"value": "billing"},
            {"value": "technical"},
            {"value": "shipping"},
            {"value": "sales"},
        ],
    },
    {"type": "predicate", "name": "urgent", "instructions": "Is this message urgent?"},
    {
        "type": "score",
        "name": "mood",
        "instructions": "How satisfied is the customer?",
        "levels": [{"label": x} for x in ("furious", "unhappy", "neutral", "pleased", "delighted")],
    },
]


def decide(client: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(f"{url}/v1/decisions", json={"model": "local", **body}, timeout=600)
    reply.raise_for_status()
    return dict(reply.json())


def an_input(round_no: int) -> str:
    """A ~100-token message, different every round (so it is never cached beforehand)."""
    order = SENTENCES[round_no % len(SENTENCES) :] + SENTENCES[: round_no % len(SENTENCES)]
    return f"Ticket {round_no}: " + " ".join(order)


def bench_questions(client: httpx.Client, url: str, rounds: int) -> None:
    times: dict[str, list[float]] = {"together": [], "apart": [], "apart, cold": []}
    ways = list(times)
    decide(client, url, {"input": an_input(-1), "questions": THREE_QUESTIONS})  # warm-up
    evict = {"questions": THREE_QUESTIONS[1:2], "calibration": "none"}
    for r in range(rounds):
        order = ways[r % len(ways) :] + ways[: r % len(ways)]
        for k, way in enumerate(order):
            text = an_input(len(ways) * r + k)
            asked = [THREE_QUESTIONS] if way == "together" else [[q] for q in THREE_QUESTIONS]
            took = 0.0
            for questions in asked:
                if way == "apart, cold":  # another text replaces the cached input, untimed
                    decide(client, url, {"input": f"Unrelated note {r}.", **evict})
                start = time.perf_counter()
                body = {"input": text, "questions": questions, "calibration": "none"}
                decide(client, url, body)
                took += time.perf_counter() - start
            times[way].append(took)
    medians = {way: statistics.median(t) for way, t in times.items()}
    print(f"\n=== (a) 3 questions, {rounds} rounds, medians ===")
    for way, label in (
        ("together", "one request"),
        ("apart", "three requests"),
        ("apart, cold", "three requests, nothing cached"),
    ):
        runs = ", ".join(f"{t:.2f}" for t in times[way])
        print(f"{label + ':':32} {medians[way]:.3f} s   (runs: {runs})")
    together = medians["together"]
    print(f"ratio one/three:                 {together / medians['apart']:.2f}x (goal <= 0.5x)")
    cold = medians["apart, cold"]
    print(f"ratio one/three, nothing cached: {together / cold:.2f}x")


def load(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows[:limit] if limit else rows


def figures(
    results: Sequence[tuple[str, dict[str, float], float]], seconds: float
) -> dict[str, float]:
    """accuracy, ECE, Brier, coverage, s/text of (gold, distribution, coverage) triples."""
    n = len(results)
    chosen = [(max(d, key=lambda v: d[v]), d) for _, d, _ in results]
    correct = [c == gold for (c, _), (gold, _, _) in zip(chosen, results, strict=True)]
    confidence = [d[c] for c, d in chosen]
    bins: list[list[int]] = [[] for _ in range(BINS)]
    for i, p in enumerate(confidence):
        bins[min(int(p * BINS), BINS - 1)].append(i)
    ece = math.fsum(
        len(b)
        / n
        * abs(sum(correct[i] for i in b) / len(b) - sum(confidence[i] for i in b) / len(b))
        for b in bins
        if b
    )
    brier = (
        math.fsum(math.fsum((p - (v == gold)) ** 2 for v, p in d.items()) for gold, d, _ in results)
        / n
    )
    return {
        "accuracy": sum(correct) / n,
        "ECE": ece,
        "Brier": brier,
        "coverage": math.fsum(c for _, _, c in results) / n,
        "s/text": seconds / n,
    }


def bench_sentiment(client: httpx.Client, url: str, limit: int | None) -> None:
    rows = load(DATA / "sentiment.jsonl", limit)
    examples = load(DATA / "sentiment_examples.jsonl")
    table: dict[str, dict[str, float]] = {}
    for shots in (0, 4):
        for calibration in ("none", "contextual"):
            question = {
                "type": "choice",
                "instructions": SENTIMENT_QUESTION,
                "choices": [{"value": "positive"}, {"value": "negative"}],
                "examples": [{"input": e["text"], "value": e["label"]} for e in examples[:shots]],
            }
            results = []
            start = time.perf_counter()
            for row in rows:
                body = {"input": row["text"], "questions": [question], "calibration": calibration}
                answer = decide(client, url, body)["answers"][0]
                distribution = {p["value"]: p["probability"] for p in answer["probabilities"]}
                results.append((row["label"], distribution, answer["coverage"]))
            name = f"{shots}-shot {'raw' if calibration == 'none' else 'calibrated'}"
            table[name] = figures(results, time.perf_counter() - start)
            print(f"  {name}: done", flush=True)
    print(f"\n=== (b) sentiment, {len(rows)} sentences, choice question ===")
    print(f"{'':10}" + "".join(f"{name:>18}" for name in table))
    for figure in ("accuracy", "ECE", "Brier", "coverage", "s/text"):
        print(f"{figure:10}" + "".join(f"{table[name][figure]:18.3f}" for name in table))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", help="base URL of a running service (default: start one)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of (a)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences in (b)")
    parser.add_argument("--only", choices=("a", "b"), default=None, help="run one part")
    args = parser.parse_args(argv)
    with target(args.url) as url, httpx.Client() as client:
        if args.only in (None, "a"):
            bench_questions(client, url, args.rounds)
        if args.only in (None, "b"):
            bench_sentiment(client, url, args.limit)


if __name__ == "__main__":
    main()
