"""Wire types of the calibration routes and of the calibration beside a calibrated answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, model_validator

Choice = StrictStr | StrictBool | StrictInt
"""A question's value: typed like OpenAI's choice values (``"true"`` and ``true`` differ)."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
CalibrationName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="A calibration's name, chosen by the caller (e.g. ticket-triage): letters, "
        "digits, '.', '_' and '-', up to 100.",
    ),
]


class ChoiceProbability(BaseModel):
    """One value of a question and its probability."""

    value: Choice = Field(description="The value (a string, a boolean or an integer).")
    probability: float = Field(ge=0.0, le=1.0, description="Its probability, in [0, 1].")


class OutcomeIn(BaseModel):
    """Which value turned out right for an answer: name the decision, or give the distribution.

    Either ``decision_id`` (a decision answered with this calibration name; ``question``
    picks its answer), or ``probabilities`` (the raw distribution the answer returned, over
    every value of the question).
    """

    outcome: Choice = Field(description="The value that turned out right: one of the values.")
    decision_id: str | None = Field(
        default=None,
        max_length=100,
        description="The id of a decision answered with this calibration name.",
    )
    question: StrictStr | StrictInt | None = Field(
        default=None,
        description="With decision_id: the question's name or its index (default: the first).",
    )
    probabilities: list[ChoiceProbability] | None = Field(
        default=None,
        min_length=2,
        max_length=50,
        description="Without decision_id: the raw distribution returned for the answer "
        "(raw_probabilities when a calibration was applied), over all of the question's values.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> OutcomeIn:
        if (self.decision_id is None) == (self.probabilities is None):
            msg = "give exactly one of decision_id and probabilities"
            raise ValueError(msg)
        if self.question is not None and self.decision_id is None:
            msg = "question is only used with decision_id"
            raise ValueError(msg)
        return self


class OutcomeRecorded(BaseModel):
    """An outcome as stored."""

    id: int = Field(description="The outcome's id (it also decides if it is held out).")
    calibration: str = Field(description="The calibration name it was recorded under.")
    decision_id: str | None = Field(description="The decision it belongs to, if named.")
    outcome: Choice = Field(description="The value that turned out right.")
    outcome_count: int = Field(description="Outcomes recorded under this calibration name.")


class ImportResult(BaseModel):
    """What a JSON-lines import stored (all lines or none)."""

    calibration: str = Field(description="The calibration name.")
    imported: int = Field(description="Outcomes stored by this import.")
    outcome_count: int = Field(description="Outcomes recorded under this name now.")


class Metrics(BaseModel):
    """Calibration figures of a set of answers (held-out outcomes here)."""

    ece: float = Field(description="Expected calibration error over 10 confidence bins.")
    brier: float = Field(description="Brier score, summed over values (0 best, 2 worst).")
    log_loss: float = Field(description="Mean negative log probability of the right value.")
    count: int = Field(description="How many outcomes these figures are from.")


class ReliabilityBin(BaseModel):
    """One bin of a reliability diagram: answers whose top probability falls in it."""

    low: float = Field(description="Lower edge of the bin (confidence).")
    high: float = Field(description="Upper edge of the bin.")
    count: int = Field(description="Answers in the bin.")
    confidence: float = Field(description="Their mean top probability (0 when empty).")
    accuracy: float = Field(description="How often their top value was right (0 when empty).")


class CalibrationFit(BaseModel):
    """One fit of a calibration name: the method, whether it is applied, held-out figures."""

    version: int = Field(description="The fit's version (increases with every fit).")
    calibration: str = Field(description="The calibration name.")
    method: str | None = Field(description="temperature, platt or isotonic; null: none fitted.")
    params: dict[str, Any] = Field(description="The fitted parameters of the method.")
    applied: bool = Field(description="Whether answers are calibrated with it.")
    reason: str = Field(description="Why it is applied or not, with the held-out log loss.")
    outcome_count: int = Field(description="Outcomes it was made from (training + held out).")
    train_count: int = Field(description="Outcomes it was fitted on.")
    heldout_count: int = Field(description="Held-out outcomes it was judged on.")
    before: Metrics = Field(description="Held-out figures of the raw probabilities.")
    after: Metrics = Field(description="Held-out figures of the calibrated probabilities.")
    reliability_before: list[ReliabilityBin] = Field(description="Held-out bins, raw.")
    reliability_after: list[ReliabilityBin] = Field(description="Held-out bins, calibrated.")
    candidates: dict[str, float] = Field(description="Held-out log loss of each method tried.")
    created_at: datetime = Field(description="When it was fitted.")


class CalibrationState(BaseModel):
    """A calibration name: its outcomes so far and its newest fit."""

    calibration: str = Field(description="The calibration name.")
    outcome_count: int = Field(description="Outcomes recorded under it.")
    fit: CalibrationFit | None = Field(description="The newest fit; null before the first.")


class CalibrationList(BaseModel):
    """Every calibration name with outcomes or fits."""

    calibrations: list[CalibrationState] = Field(description="One entry per name, by name.")


class AppliedCalibration(BaseModel):
    """Which fit calibrated an answer, beside the calibrated and the raw distributions."""

    name: str = Field(description="The calibration name asked for.")
    version: int | None = Field(description="The fit's version; null before the first fit.")
    method: str | None = Field(description="The fit's method; null when none is applied.")
    applied: bool = Field(description="Whether the distribution was changed by a fit.")
    reason: str = Field(description="Why it was or was not applied.")
