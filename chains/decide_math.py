"""Pure math of Decisions: from each value's whole-answer logprob to a typed answer. No I/O.

A value's raw probability is ``exp`` of the sum of its answer's teacher-forced token logprobs
(``P(" negative\\n" | prompt)``); renormalised over the question's values it is the answer's
distribution, and the mass before renormalising is ``coverage``. Contextual calibration
(Zhao et al. 2021, "Calibrate before use") divides each value's probability by the one the
same question gives it on a content-free input (``N/A``) and renormalises: the model's
preference for some answers whatever the input is taken out. It is done in log space, so a
value the content-free input makes very unlikely never divides by zero.

``finish_answer`` is the one place where a finished answer's distribution is produced; a
further calibration step (raw -> calibrated, raw kept beside) belongs there.

``confidence`` is how concentrated the distribution is: ``1 - H(p) / log(K)`` over K values
(H the entropy in nats), 1 when all mass is on one value, 0 when it is uniform, 1 for a
single level. It is not the chosen value's probability (langchain-openai documents OpenAI's
the same way); with two values, 0.5/0.5 gives 0 and 0.9/0.1 gives 0.53.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chains.calibration_apply import LearnedFit
from chains.continuation_math import normalise
from chains.decide_schema import ChoiceQuestion, PredicateQuestion, ScoreQuestion

NO_MASS = -1e4
"""The log-mass of a value the first-token approximation saw nothing of (finite for JSON)."""


@dataclass(frozen=True, slots=True)
class ValueScores:
    """One question's values scored: each value's whole-answer logprob, and how."""

    logprobs: list[float]
    """``log P(answer text of value i | prompt)``, in the question's value order."""
    exact: bool
    """True when each whole answer was teacher-forced (not read from first-token tops)."""


def coverage_of(logprobs: Sequence[float]) -> float:
    """The raw mass on the values, in [0, 1]."""
    return min(1.0, math.exp(max(normalise(logprobs)[1], -700.0)))


def contextual_calibration(logprobs: Sequence[float], content_free: Sequence[float]) -> list[float]:
    """``p(v) / p_cf(v)`` renormalised, where p_cf is the content-free input's distribution
    (each renormalised over the values first, so only their ratios matter)."""
    cf, _ = normalise(content_free)
    floor = 1e-300
    return normalise([lp - math.log(max(q, floor)) for lp, q in zip(logprobs, cf, strict=True)])[0]


def concentration(probabilities: Sequence[float]) -> float:
    """``1 - entropy / log(K)``: 1 for a point mass (or K = 1), 0 for uniform."""
    if len(probabilities) < 2:
        return 1.0
    entropy = -math.fsum(p * math.log(p) for p in probabilities if p > 0.0)
    return min(1.0, max(0.0, 1.0 - entropy / math.log(len(probabilities))))


def argmax(probabilities: Sequence[float]) -> int:
    """Index of the most probable value (ties: the first)."""
    return max(range(len(probabilities)), key=lambda i: (probabilities[i], -i))


AnyQuestion = PredicateQuestion | ChoiceQuestion | ScoreQuestion


def question_values(question: AnyQuestion) -> list[Any]:
    """The values a question's distribution is over: true/false, its choices, level indices."""
    if isinstance(question, PredicateQuestion):
        return [True, False]
    if isinstance(question, ChoiceQuestion):
        return [c.value for c in question.choices]
    return list(range(len(question.levels)))


def finish_answer(
    question: AnyQuestion,
    raw: ValueScores,
    content_free: ValueScores | None,
    learned: LearnedFit | None = None,
) -> dict[str, Any]:
    """The typed answer (as a dict) of one question from its scored values.

    Args:
        question: the question, whose values the scores follow in order (a predicate's are
            yes, no).
        raw: each value's whole-answer logprob after the real input.
        content_free: the same after the content-free input, when calibrating; else None.
        learned: a learned calibration, applied after the contextual one; the distribution
            before it is kept beside (``raw_probabilities``, ``raw_probability``).
    """
    if not raw.exact and all(v <= NO_MASS for v in raw.logprobs):
        # The approximation saw no mass on any value: nothing honest to report.
        return {
            "type": "refusal",
            "name": question.name,
            "coverage": 0.0,
            "exact": False,
            "calibrated": False,
        }
    probs = (
        contextual_calibration(raw.logprobs, content_free.logprobs)
        if content_free is not None
        else normalise(raw.logprobs)[0]
    )
    common: dict[str, Any] = {
        "type": question.type,
        "name": question.name,
        "coverage": coverage_of(raw.logprobs),
        "exact": raw.exact and (content_free is None or content_free.exact),
        "calibrated": content_free is not None,
    }
    before = probs
    if learned is not None:
        probs = learned.apply(question_values(question), probs)
        common["learned_calibration"] = learned.info
    if isinstance(question, PredicateQuestion):
        if learned is not None:
            common["raw_probability"] = before[0]
        return {**common, "probability": probs[0]}
    confidence = concentration(probs)
    if isinstance(question, ChoiceQuestion):
        values = [c.value for c in question.choices]
        if learned is not None:
            common["raw_probabilities"] = [
                {"value": v, "probability": p} for v, p in zip(values, before, strict=True)
            ]
        return {
            **common,
            "choice": values[argmax(probs)],
            "probabilities": [
                {"value": v, "probability": p} for v, p in zip(values, probs, strict=True)
            ],
            "confidence": confidence,
        }
    levels = [
        {"value": i, "label": level.label, "probability": p}
        for i, (level, p) in enumerate(zip(question.levels, probs, strict=True))
    ]
    if learned is not None:
        common["raw_probabilities"] = [
            {"value": i, "label": level.label, "probability": p}
            for i, (level, p) in enumerate(zip(question.levels, before, strict=True))
        ]
    score = math.fsum(i * p for i, p in enumerate(probs))
    return {**common, "score": score, "probabilities": levels, "confidence": confidence}
