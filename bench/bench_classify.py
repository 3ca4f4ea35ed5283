"""Calibration benchmark of ``/classify`` on 100 labelled sentiment sentences (not a test).

Sends every sentence of ``bench/data/sentiment.jsonl`` to ``/classify`` with the labels
``positive``/``negative`` (``--labels negative,positive`` swaps the options) through
``RemoteRunnable(url + "/classify").batch`` and prints accuracy (overall, easy, hard),
expected calibration error over 10 equal-width confidence bins, the Brier score, mean
coverage, how often each label was predicted, and a reliability table (bin, count, mean
confidence, accuracy). It does so zero-shot and then few-shot, with the first 4 solved
examples of ``bench/data/sentiment_examples.jsonl`` (none of them in the test set) sent
as ``examples`` (``--shots 0,4,8`` picks the counts).

Each count runs with every method of ``--methods`` (default ``score,label``) and a table at
the end puts accuracy, ECE, Brier, coverage and seconds per text side by side.

Run: ``.venv/bin/python -m bench.bench_classify [URL] [--limit N] [--shots 0,4] [--methods ..]``.
With no URL it starts the app itself on a free port, on whatever backend the environment
configures (the embedded model when neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` is
set), so the same script measures any OpenAI-compatible upstream.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langserve import RemoteRunnable

DATA = Path(__file__).resolve().parent / "data" / "sentiment.jsonl"
EXAMPLES = Path(__file__).resolve().parent / "data" / "sentiment_examples.jsonl"
DEFAULT_LABELS = ["positive", "negative"]
BINS = 10


@dataclass(frozen=True)
class Result:
    """One scored sentence: the gold label and what /classify answered."""

    gold: str
    difficulty: str
    label: str
    confidence: float
    distribution: dict[str, float]
    coverage: float
    known: bool


def load(path: Path, limit: int | None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows[:limit] if limit else rows


@contextmanager
def target(url: str | None, **settings: Any) -> Iterator[str]:
    """The given URL, or a server started here with the environment's settings.

    ``settings`` override fields of that server's ``Settings`` (e.g. ``data_dir``); the
    benches that talk to the app over HTTP all start it here.
    """
    if url:
        yield url.rstrip("/")
        return
    import server
    from bench.procs import free_port, run_server
    from langserve_logprobs.settings import Settings

    config = Settings(port=free_port(), **settings)
    backend = "embedded model" if config.use_local else config.upstream_base_url
    print(f"starting the app on port {config.port} (backend: {backend}, {config.model_name})")
    with run_server(server.create_app(config), port=config.port, timeout=300) as base:
        yield base


def classify_all(
    url: str,
    rows: Sequence[dict[str, str]],
    labels: list[str],
    batch_size: int,
    examples: Sequence[dict[str, str]] = (),
    method: str | None = None,
) -> list[Result]:
    """Run /classify over ``rows`` in batches; items that failed are reported and skipped."""
    remote: RemoteRunnable[Any, Any] = RemoteRunnable(url + "/classify", timeout=900)
    results: list[Result] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        shots = [{"text": e["text"], "label": e["label"]} for e in examples]
        inputs = [
            {"text": row["text"], "labels": labels, "examples": shots, "method": method}
            for row in chunk
        ]
        outputs = remote.batch(inputs)
        for row, out in zip(chunk, outputs, strict=True):
            if "error" in out:
                print(f"  failed: {row['text']!r}: {out['error']['message']}")
                continue
            results.append(
                Result(
                    gold=row["label"],
                    difficulty=row.get("difficulty", ""),
                    label=out["label"],
                    confidence=out["distribution"][out["label"]],
                    distribution=out["distribution"],
                    coverage=out["coverage"],
                    known=out["confidence"] is not None,
                )
            )
        print(f"  {min(start + batch_size, len(rows))}/{len(rows)} done")
    return results


def accuracy(results: Sequence[Result]) -> float:
    return sum(r.label == r.gold for r in results) / len(results) if results else math.nan


def brier(results: Sequence[Result]) -> float:
    """Mean over items of the sum over labels of (p - y)^2 (0 best, 2 worst)."""
    return math.fsum(
        math.fsum((r.distribution[label] - (label == r.gold)) ** 2 for label in r.distribution)
        for r in results
    ) / len(results)


def reliability(results: Sequence[Result]) -> list[tuple[int, int, float, float]]:
    """Per confidence bin: (bin, count, mean confidence, accuracy); NaN for empty bins."""
    bins: list[list[Result]] = [[] for _ in range(BINS)]
    for r in results:
        bins[min(int(r.confidence * BINS), BINS - 1)].append(r)
    return [
        (
            i,
            len(members),
            math.fsum(r.confidence for r in members) / len(members) if members else math.nan,
            accuracy(members),
        )
        for i, members in enumerate(bins)
    ]


def ece(results: Sequence[Result]) -> float:
    """Expected calibration error: count-weighted mean |accuracy - confidence| over bins."""
    table = reliability(results)
    return math.fsum(n / len(results) * abs(acc - conf) for _, n, conf, acc in table if n)


def summary(results: Sequence[Result], seconds: float) -> dict[str, float]:
    """The side-by-side figures of one run."""
    n = len(results)
    return {
        "accuracy": accuracy(results),
        "ECE": ece(results) if n else math.nan,
        "Brier": brier(results) if n else math.nan,
        "coverage": math.fsum(r.coverage for r in results) / n if n else math.nan,
        "s/text": seconds / n if n else math.nan,
    }


def side_by_side(table: dict[str, dict[str, float]]) -> None:
    """One row per figure, one column per (shots, method) run."""
    names = list(table)
    print("\n=== side by side ===")
    print(f"{'':10}" + "".join(f"{name:>18}" for name in names))
    for figure in ("accuracy", "ECE", "Brier", "coverage", "s/text"):
        print(f"{figure:10}" + "".join(f"{table[name][figure]:18.3f}" for name in names))


def report(results: Sequence[Result], total: int, seconds: float) -> None:
    n = len(results)
    print(f"\n/classify on {n}/{total} sentences ({total - n} failed) in {seconds:.1f} s")
    if not n:
        return
    for name in ("easy", "hard"):
        subset = [r for r in results if r.difficulty == name]
        if subset:
            print(f"accuracy ({name}, n={len(subset)}): {accuracy(subset):.3f}")
    print(f"accuracy:                 {accuracy(results):.3f}")
    print(f"ECE ({BINS} bins):            {ece(results):.3f}")
    print(f"Brier (sum over labels):  {brier(results):.3f}")
    print(f"mean coverage:            {math.fsum(r.coverage for r in results) / n:.3f}")
    print(f"mean confidence:          {math.fsum(r.confidence for r in results) / n:.3f}")
    print(f"coverage 0 (no logprob):  {sum(not r.known for r in results)}")
    labels = list(results[0].distribution)
    predicted = {label: sum(r.label == label for r in results) for label in labels}
    print(f"predicted:                {predicted} (gold: 50/50 on the full set)")
    print("\nreliability (confidence of the predicted label)")
    print("  bin        count  mean conf  accuracy")
    for i, count, conf, acc in reliability(results):
        span = f"[{i / BINS:.1f},{(i + 1) / BINS:.1f}{']' if i == BINS - 1 else ')'}"
        cells = f"{conf:9.3f}  {acc:8.3f}" if count else f"{'-':>9}  {'-':>8}"
        print(f"  {span:<10} {count:5d}  {cells}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", help="base URL of a running service (default: start one)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences")
    parser.add_argument("--batch-size", type=int, default=10, help="sentences per /batch call")
    parser.add_argument("--data", type=Path, default=DATA, help="JSONL of {text, label}")
    parser.add_argument(
        "--labels",
        default=",".join(DEFAULT_LABELS),
        help="comma-separated labels in option order (reverse them to see position bias)",
    )
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="JSONL of solved examples")
    parser.add_argument(
        "--shots", default="0,4", help="comma-separated numbers of examples to run with"
    )
    parser.add_argument(
        "--methods",
        default="score,label",
        help="comma-separated /classify methods to compare (score, label, marker)",
    )
    args = parser.parse_args(argv)
    rows = load(args.data, args.limit)
    examples = load(args.examples, None)
    table: dict[str, dict[str, float]] = {}
    with target(args.url) as url:
        for shots in (int(n) for n in args.shots.split(",")):
            for method in args.methods.split(","):
                title = "zero-shot" if shots == 0 else f"{shots}-shot ({args.examples.name})"
                print(f"\n=== {title}, method {method} ===")
                start = time.perf_counter()
                results = classify_all(
                    url, rows, args.labels.split(","), args.batch_size, examples[:shots], method
                )
                seconds = time.perf_counter() - start
                report(results, len(rows), seconds)
                table[f"{shots}-shot {method}"] = summary(results, seconds)
    side_by_side(table)


if __name__ == "__main__":
    main()
