"""Learned calibration on the sentiment bench: fit on one half, judge on the other (not a test).

Asks each of the 100 sentences of ``bench/data/sentiment.jsonl`` the question ``/classify``'s
method score asks (``chains.classify.classify_question``: labels positive/negative)
through ``POST /v1/decisions``, zero-shot and 4-shot, each with contextual calibration off
(``calibration: none``) and on (``contextual``), so that the two calibrations are measured
alone and together (the learned fit is applied after the contextual one). The sentences are
split into two halves of 50 by pairs (the file alternates positive/negative and puts the easy
ones first, so each half gets 25 of each label and the same mix of easy and hard). For each
direction (fit on A, judge on B; fit on B, judge on A) the fit half's outcomes are imported
into the service under a calibration name through the HTTP API
(``/v1/calibrations/{name}/outcomes/import``) and fitted there (``.../fit``: its own
held-out split inside the half, the guard against a worse log loss); the fit's parameters
are then applied to the other half, which the fit never saw, and ECE, Brier and log loss
are printed raw vs calibrated, side by side, with the ECE floor (the binning noise of a
perfectly calibrated model on as many outcomes).

``--curve`` (no server) prints the learning curve behind the method thresholds in
``chains/calibration_fit.py``: synthetic outcomes from four kinds of miscalibration, each
method fitted on N outcomes and judged on 4000 others, mean held-out log loss over repeats.

Run: ``.venv/bin/python -m bench.bench_calibration [URL] [--shots 0,4] [--curve]``. With no
URL it starts the app itself on a free port (the embedded model unless an upstream is
configured) with a temporary SQLite calibration database.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bench_classify import DATA, EXAMPLES, load, target
from chains.calibration_fit import THRESHOLDS, apply
from chains.calibration_methods import FITTERS, Method, from_params
from chains.calibration_metrics import Example, Scores, scores
from chains.classify import ClassifyExample, ClassifyInput, classify_question

LABELS = ["positive", "negative"]
SETTINGS = ("none", "contextual")
"""Contextual calibration off and on (the decision's ``calibration``); the learned fit is
applied after it, to the distribution the decision returns."""


@dataclass(frozen=True)
class Result:
    """One sentence's gold label and the distribution the decision gave."""

    gold: str
    distribution: dict[str, float]


def decide_all(
    url: str, rows: Sequence[dict[str, str]], shots: Sequence[dict[str, str]], contextual: str
) -> list[Result]:
    """Each sentence as /classify's method score asks it (``classify_question``), through
    ``POST /v1/decisions`` with contextual calibration ``none`` or ``contextual``."""
    results = []
    with httpx.Client(base_url=url, timeout=300) as client:
        for i, row in enumerate(rows):
            data = ClassifyInput(
                text=row["text"],
                labels=LABELS,
                examples=[ClassifyExample(text=e["text"], label=e["label"]) for e in shots],
            )
            question = classify_question(data).model_dump(exclude_none=True)
            body = {"model": "bench", "input": row["text"], "questions": [question]}
            response = client.post("/v1/decisions", json={**body, "calibration": contextual})
            response.raise_for_status()
            answer = response.json()["answers"][0]
            distribution = {p["value"]: p["probability"] for p in answer["probabilities"]}
            results.append(Result(row["label"], distribution))
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{len(rows)} done")
    return results


def key(value: str) -> str:
    return f'"{value}"'


def example(result: Result) -> Example:
    labels = list(result.distribution)
    return Example(
        tuple(key(label) for label in labels),
        tuple(result.distribution[label] for label in labels),
        labels.index(result.gold),
    )


def outcome_line(result: Result) -> dict[str, Any]:
    return {
        "probabilities": [{"value": k, "probability": p} for k, p in result.distribution.items()],
        "outcome": result.gold,
    }


def halves(rows: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Row indices of the two halves: pairs (0, 1), (4, 5), ... and (2, 3), (6, 7), ..."""
    first = [i for i in range(len(rows)) if (i // 2) % 2 == 0]
    second = [i for i in range(len(rows)) if (i // 2) % 2 == 1]
    return first, second


def fit_remote(url: str, name: str, results: Sequence[Result]) -> dict[str, Any]:
    """Import ``results`` as outcomes under ``name`` and fit it, through the HTTP API."""
    body = "".join(json.dumps(outcome_line(r)) + "\n" for r in results)
    imported = httpx.post(f"{url}/v1/calibrations/{name}/outcomes/import", content=body, timeout=60)
    imported.raise_for_status()
    fitted = httpx.post(f"{url}/v1/calibrations/{name}/fit", timeout=120)
    fitted.raise_for_status()
    return dict(fitted.json())


def judge(fit: dict[str, Any], test: Sequence[Example]) -> tuple[Scores, Scores]:
    """Raw and calibrated figures of ``test`` under ``fit`` (raw when it is not applied)."""
    if not fit["applied"]:
        return scores(test), scores(test)
    calibrator = from_params(fit["method"], fit["params"])
    return scores(test), scores(apply(calibrator, test))


def ece_floor(examples: Sequence[Example], draws: int = 500) -> float:
    """Mean ECE if the right values were drawn from these very distributions: what a
    perfectly calibrated model still measures on this many outcomes (binning noise)."""
    rng = random.Random(0)
    total = 0.0
    for _ in range(draws):
        drawn = []
        for ex in examples:
            u, acc, pick = rng.random(), 0.0, len(ex.probs) - 1
            for i, p in enumerate(ex.probs):
                acc += p
                if u < acc:
                    pick = i
                    break
            drawn.append(Example(ex.keys, ex.probs, pick))
        total += scores(drawn).ece
    return total / draws


def row(label: str, s: Scores) -> str:
    return f"  {label:<22} ECE {s.ece:6.3f}   Brier {s.brier:6.3f}   log loss {s.log_loss:6.3f}"


def run_bench(url: str, shots_list: Sequence[int], save: Path | None = None) -> None:
    rows = load(DATA, None)
    examples = load(EXAMPLES, None)
    parts = halves(rows)
    table: dict[str, tuple[Scores, Scores]] = {}
    floors: dict[str, float] = {}
    stamp = int(time.time())
    for shots, contextual in ((n, c) for n in shots_list for c in SETTINGS):
        title = f"{'zero-shot' if shots == 0 else f'{shots}-shot'}, {contextual}"
        print(f"\n=== {title}: /v1/decisions over {len(rows)} sentences ===")
        results = decide_all(url, rows, examples[:shots], contextual)
        if save is not None:
            with save.open("a", encoding="utf-8") as out:
                for r in results:
                    line = {"shots": shots, "contextual": contextual, **asdict(r)}
                    out.write(json.dumps(line) + "\n")
        raw_all: list[Example] = []
        cal_all: list[Example] = []
        for direction, (fit_part, test_part) in (("A->B", parts), ("B->A", parts[::-1])):
            fit_on = [results[i] for i in fit_part]
            test_on = [results[i] for i in test_part]
            name = f"bench-{stamp}-{shots}shot-{contextual}-{direction[0]}"
            fit = fit_remote(url, name, fit_on)
            test = [example(r) for r in test_on]
            raw, calibrated = judge(fit, test)
            print(f"\n fit on half {direction[0]} ({len(fit_on)}: {fit['train_count']} fitted, "
                  f"{fit['heldout_count']} held out): {fit['reason']}")  # fmt: skip
            print(row(f"half {direction[-1]} raw", raw))
            print(row(f"half {direction[-1]} calibrated", calibrated))
            raw_all += test
            if fit["applied"]:
                cal_all += apply(from_params(fit["method"], fit["params"]), test)
            else:
                cal_all += test
        table[title] = (scores(raw_all), scores(cal_all))
        floors[title] = ece_floor(cal_all)
    print("\n=== side by side: each sentence judged by the fit of the half it is not in ===")
    print(f"{'':24}{'ECE raw':>9}{'ECE cal':>9}{'floor':>7}{'LL raw':>9}{'LL cal':>9}"
          f"{'Brier raw':>11}{'Brier cal':>11}")  # fmt: skip
    for title, (raw, cal) in table.items():
        print(f"{title:24}{raw.ece:9.3f}{cal.ece:9.3f}{floors[title]:7.3f}{raw.log_loss:9.3f}"
              f"{cal.log_loss:9.3f}{raw.brier:11.3f}{cal.brier:11.3f}")  # fmt: skip
    print(
        "floor: mean ECE of a perfectly calibrated model with the calibrated confidences "
        "on as many outcomes (10-bin noise)"
    )


KINDS: dict[str, tuple[float, float]] = {
    # (slope on the true log-odds, added lean) of what the model reports
    "overconfident x3": (3.0, 0.0),
    "underconfident x0.5": (0.5, 0.0),
    "overconfident x2, leaning +1": (2.0, 1.0),
    "bent (x3 above 0.5 only)": (3.0, 0.0),
}


def synthetic(kind: str, n: int, rng: random.Random) -> list[Example]:
    slope, lean = KINDS[kind]
    out = []
    for _ in range(n):
        truth = rng.uniform(0.02, 0.98)
        logit = math.log(truth / (1 - truth))
        shown = slope * logit + lean if not kind.startswith("bent") or logit > 0 else logit
        p = 1 / (1 + math.exp(-shown))
        out.append(Example(('"n"', '"p"'), (1 - p, p), int(rng.random() < truth)))
    return out


def learning_curve(sizes: Sequence[int], repeats: int) -> None:
    methods: list[Method] = ["temperature", "platt", "isotonic"]
    print(f"held-out log loss (4000 outcomes), mean of {repeats} draws; thresholds now: "
          f"{THRESHOLDS}")  # fmt: skip
    for kind in KINDS:
        print(f"\n{kind}")
        print(f"{'N fitted':>9}{'raw':>9}" + "".join(f"{m:>13}" for m in methods) + "   best")
        rng = random.Random(0)
        test = synthetic(kind, 4000, rng)
        raw = scores(test).log_loss
        for n in sizes:
            totals = dict.fromkeys(methods, 0.0)
            for _ in range(repeats):
                train = synthetic(kind, n, rng)
                for m in methods:
                    totals[m] += scores(apply(FITTERS[m](train), test)).log_loss / repeats
            best = min(totals, key=lambda m: totals[m])
            cells = "".join(f"{totals[m]:13.4f}" for m in methods)
            print(f"{n:9d}{raw:9.4f}{cells}   {best}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", help="base URL of a running service (default: start one)")
    parser.add_argument("--shots", default="0,4", help="comma-separated numbers of examples")
    parser.add_argument("--save", type=Path, help="append /classify's answers here (JSONL)")
    parser.add_argument("--curve", action="store_true", help="print the learning curve only")
    parser.add_argument("--sizes", default="10,20,40,60,100,200,400,800", help="curve's N")
    parser.add_argument("--repeats", type=int, default=10, help="curve's draws per N")
    args = parser.parse_args(argv)
    if args.curve:
        learning_curve([int(n) for n in args.sizes.split(",")], args.repeats)
        return
    # The app started here keeps its calibrations in a temporary SQLite database.
    with (
        tempfile.TemporaryDirectory(prefix="bench-calibration-") as data_dir,
        target(args.url, data_dir=data_dir) as url,
    ):
        run_bench(url, [int(n) for n in args.shots.split(",")], args.save)


if __name__ == "__main__":
    main()
