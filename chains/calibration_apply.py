"""A learned calibration as a chain sees it: a fitted map for one request, and where it comes from.

``LearnedFit`` is what a route holds while it answers: the newest fit of a calibration name
(``None`` when there is none or it is not applied) and the description that goes beside
the answer. ``CalibrationSource`` is the interface the decision engine is handed (the
service in ``langserve_logprobs.calibration``): fetch a name's fit once per request, record
the raw answers of a decision so that outcomes can name it by id. Values are keyed by their
JSON text, as the store keys them. Pure, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from chains.calibration_methods import Calibrator


def value_key(value: Any) -> str:
    """A value's identity for calibration: its JSON text (``"true"`` and ``true`` differ)."""
    return json.dumps(value)


@dataclass(frozen=True)
class LearnedFit:
    """A calibration name's fit for one request; ``calibrator`` None leaves answers raw."""

    name: str
    calibrator: Calibrator | None
    info: dict[str, Any] = field(default_factory=dict)
    """``AppliedCalibration`` as a dict: name, version, method, applied, reason."""

    def apply(self, values: Sequence[Any], probabilities: Sequence[float]) -> list[float]:
        """``probabilities`` over ``values`` mapped by the fit (a copy when there is none)."""
        if self.calibrator is None:
            return list(probabilities)
        return self.calibrator.apply([value_key(v) for v in values], probabilities)


@dataclass(frozen=True)
class RawAnswer:
    """One answer of a decision as the fit saw it (after contextual calibration, if any)."""

    index: int
    question: str | None
    values: list[Any]
    probabilities: list[float]


def raw_answers(answers: Sequence[Mapping[str, Any]]) -> list[RawAnswer]:
    """The distributions before the learned fit of a decision's answers (those that have one:
    ``raw_probabilities``, or a predicate's ``raw_probability`` over true and false)."""
    out = []
    for index, answer in enumerate(answers):
        if answer.get("raw_probability") is not None:
            p = float(answer["raw_probability"])
            values: list[Any] = [True, False]
            probabilities = [p, 1.0 - p]
        elif answer.get("raw_probabilities"):
            values = [item["value"] for item in answer["raw_probabilities"]]
            probabilities = [float(item["probability"]) for item in answer["raw_probabilities"]]
        else:
            continue
        out.append(RawAnswer(index, answer.get("name"), values, probabilities))
    return out


@runtime_checkable
class CalibrationSource(Protocol):
    """Where fits come from and where answered decisions go (the calibration service)."""

    async def fitted(self, name: str) -> LearnedFit:
        """The newest fit of ``name`` (raises a 503 error when the database is down)."""
        ...

    async def record_decision(
        self, decision_id: str, name: str, answers: Sequence[RawAnswer]
    ) -> None:
        """Keep a decision's raw answers so that outcomes can name it by id."""
        ...
