"""How well probabilities mean what they say: ECE, Brier, log loss and the reliability table.

Pure functions over answered questions whose right answer is known (``Example``): a
distribution over the question's values and the index of the value that turned out right.
The confidence of an answer is the probability of its most probable value (top-label
confidence, the first one on a tie), binned into ``BINS`` equal-width bins as in
``bench/bench_classify.py``, so the figures here and there are the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

BINS = 10
LOG_FLOOR = 1e-15
"""Smallest probability the log loss takes a log of: a 0 on the right value costs ~34.5 nats."""


@dataclass(frozen=True)
class Example:
    """A distribution over a question's values and which value turned out right.

    ``keys`` name the values (their JSON text, so ``"true"`` and ``true`` differ);
    ``probs`` are aligned with them and sum to 1; ``outcome`` indexes the right one.
    """

    keys: tuple[str, ...]
    probs: tuple[float, ...]
    outcome: int

    def with_probs(self, probs: Sequence[float]) -> Example:
        """The same question and outcome with another distribution."""
        return Example(self.keys, tuple(probs), self.outcome)


@dataclass(frozen=True)
class Scores:
    """Expected calibration error, Brier score and log loss of a set of answers."""

    ece: float
    brier: float
    log_loss: float
    count: int


@dataclass(frozen=True)
class Bin:
    """One confidence bin of a reliability diagram (NaN-free: empty bins hold zeros)."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def top(probs: Sequence[float]) -> int:
    """Index of the most probable value (the first one on a tie)."""
    return max(range(len(probs)), key=lambda i: (probs[i], -i))


def bin_index(confidence: float, bins: int = BINS) -> int:
    """The equal-width bin a confidence in [0, 1] falls into (1.0 goes to the last)."""
    return min(max(int(confidence * bins), 0), bins - 1)


def reliability(examples: Sequence[Example], bins: int = BINS) -> list[Bin]:
    """Per bin: how many answers, their mean confidence, and how often the top value was right."""
    counts = [0] * bins
    conf = [0.0] * bins
    right = [0] * bins
    for ex in examples:
        best = top(ex.probs)
        i = bin_index(ex.probs[best], bins)
        counts[i] += 1
        conf[i] += ex.probs[best]
        right[i] += best == ex.outcome
    return [
        Bin(
            low=i / bins,
            high=(i + 1) / bins,
            count=n,
            confidence=conf[i] / n if n else 0.0,
            accuracy=right[i] / n if n else 0.0,
        )
        for i, n in enumerate(counts)
    ]


def ece(examples: Sequence[Example], bins: int = BINS) -> float:
    """Expected calibration error: count-weighted mean |accuracy - confidence| over bins."""
    if not examples:
        return 0.0
    table = reliability(examples, bins)
    return math.fsum(b.count * abs(b.accuracy - b.confidence) for b in table) / len(examples)


def brier(examples: Sequence[Example]) -> float:
    """Mean over answers of the sum over values of (p - y)^2 (0 best, 2 worst)."""
    if not examples:
        return 0.0
    total = math.fsum(
        math.fsum((p - (i == ex.outcome)) ** 2 for i, p in enumerate(ex.probs)) for ex in examples
    )
    return total / len(examples)


def log_loss(examples: Sequence[Example]) -> float:
    """Mean negative log probability (nats) of the value that turned out right."""
    if not examples:
        return 0.0
    total = math.fsum(-math.log(max(ex.probs[ex.outcome], LOG_FLOOR)) for ex in examples)
    return total / len(examples)


def scores(examples: Sequence[Example]) -> Scores:
    """ECE, Brier and log loss of ``examples`` together."""
    return Scores(
        ece=ece(examples), brier=brier(examples), log_loss=log_loss(examples), count=len(examples)
    )
