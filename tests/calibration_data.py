"""Synthetic outcomes for the calibration tests: a model that is sure of itself too often."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from chains.calibration_fit import is_heldout

LABELS = ["negative", "positive"]


def outcome_line(p_positive: float, positive: bool) -> dict[str, Any]:
    """One outcome given with its raw distribution."""
    return {
        "probabilities": [
            {"value": "negative", "probability": 1 - p_positive},
            {"value": "positive", "probability": p_positive},
        ],
        "outcome": "positive" if positive else "negative",
    }


def overconfident(n: int, seed: int = 0, power: float = 3.0) -> list[dict[str, Any]]:
    """Outcomes drawn from a true probability, reported sharpened (log-odds times ``power``)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        truth = rng.uniform(0.05, 0.95)
        logit = power * math.log(truth / (1 - truth))
        rows.append(outcome_line(1 / (1 + math.exp(-logit)), rng.random() < truth))
    return rows


def misleading(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Outcome ``i`` (id ``i + 1`` in a fresh database) is overconfident when it is fitted on
    and already calibrated when it is held out: any fit flattens, and hurts held-out log loss."""
    sharp = overconfident(n, seed, power=4.0)
    fair = overconfident(n, seed + 1, power=1.0)
    return [fair[i] if is_heldout(i + 1) else sharp[i] for i in range(n)]


def ndjson(rows: list[dict[str, Any]]) -> str:
    """Rows as JSON lines."""
    return "".join(json.dumps(row) + "\n" for row in rows)
