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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
