"""Record outcomes, fit per calibration name, apply the newest fit to an answer.

A value is keyed by its JSON text (``json.dumps``), so ``"true"`` and ``true`` are two
values. The newest fit of a name is cached for ``CACHE_SECONDS`` (a fit made here replaces
it at once; one made by another server process is seen within that time); a failure to
read it is never cached.

Order with contextual calibration: the distribution a decision returns is corrected for the
prompt first (contextual calibration, input by input), then mapped by the learned fit, and
the raw distribution recorded for outcomes is the one before the learned fit. So a fit
learns what contextual calibration left over.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from chains.calibration_apply import LearnedFit, RawAnswer, value_key
from chains.calibration_fit import fit, split
from chains.calibration_methods import from_params
from chains.calibration_metrics import Example
from langserve_logprobs.calibration.fits import fit_model, fit_row
from langserve_logprobs.calibration.schemas import (
    AppliedCalibration,
    CalibrationFit,
    CalibrationList,
    CalibrationState,
    ImportResult,
    OutcomeIn,
    OutcomeRecorded,
)
from langserve_logprobs.calibration.store import AnswerRecord, CalibrationStore, OutcomeRecord
from langserve_logprobs.errors import InvalidRequestError, NotFoundError, invalid_input

CACHE_SECONDS = 5.0
SUM_TOLERANCE = 1e-3
MAX_IMPORT_LINES = 100_000
NO_FIT = "no fit yet: record outcomes, then fit"


key = value_key


def check_distribution(choices: Sequence[Any], probabilities: Sequence[float]) -> list[float]:
    """``probabilities`` renormalised, after checking they are a distribution over ``choices``.

    Raises:
        InvalidRequestError: repeated values, a sum away from 1, or a non-finite number.
    """
    if len({key(c) for c in choices}) != len(choices):
        msg = "probabilities: each value may appear once"
        raise InvalidRequestError(msg)
    total = math.fsum(probabilities)
    if not all(math.isfinite(p) and p >= 0 for p in probabilities) or abs(total - 1) > 1e-2:
        msg = f"probabilities: must be non-negative and sum to 1 (they sum to {total:.4f})"
        raise InvalidRequestError(msg)
    return [p / total for p in probabilities]


def _outcome_index(choices: Sequence[Any], outcome: Any) -> int:
    keys = [key(c) for c in choices]
    if key(outcome) not in keys:
        msg = f"outcome {key(outcome)} is not one of the question's values ({', '.join(keys)})"
        raise InvalidRequestError(msg)
    return keys.index(key(outcome))


class CalibrationService:
    """The calibration names' outcomes and fits, over a ``CalibrationStore``."""

    def __init__(self, store: CalibrationStore, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, CalibrationFit | None]] = {}
        self._lock = threading.Lock()

    def _resolve(self, name: str, item: OutcomeIn) -> OutcomeRecord:
        if item.probabilities is not None:
            choices = [p.value for p in item.probabilities]
            probs = check_distribution(choices, [p.probability for p in item.probabilities])
            _outcome_index(choices, item.outcome)
            return OutcomeRecord(name, choices, probs, item.outcome)
        assert item.decision_id is not None
        answers = self.store.answers(item.decision_id)
        if not answers:
            msg = f"no decision {item.decision_id!r} was answered with a calibration name"
            raise NotFoundError(msg)
        if answers[0].calibration != name:
            msg = f"decision {item.decision_id!r} was answered with calibration "
            msg += f"{answers[0].calibration!r}, not {name!r}"
            raise InvalidRequestError(msg)
        answer = self._pick(answers, item.question)
        _outcome_index(answer.choices, item.outcome)
        return OutcomeRecord(
            name,
            answer.choices,
            answer.probabilities,
            item.outcome,
            decision_id=answer.decision_id,
            answer_index=answer.answer_index,
        )

    @staticmethod
    def _pick(answers: Sequence[AnswerRecord], question: str | int | None) -> AnswerRecord:
        if question is None:
            return answers[0]
        for answer in answers:
            if answer.answer_index == question or (
                isinstance(question, str) and answer.question == question
            ):
                return answer
        msg = f"decision {answers[0].decision_id!r} has no question {question!r}"
        raise InvalidRequestError(msg)

    def record(self, name: str, item: OutcomeIn) -> OutcomeRecorded:
        """Store one outcome."""
        record = self._resolve(name, item)
        (new_id,) = self.store.add_outcomes([record])
        count = self.store.outcome_counts(name).get(name, 0)
        return OutcomeRecorded(
            id=new_id,
            calibration=name,
            decision_id=record.decision_id,
            outcome=record.outcome,
            outcome_count=count,
        )

    def import_lines(self, name: str, body: str) -> ImportResult:
        """Store one outcome per JSON line of ``body``, all or none (blank lines skipped)."""
        records = []
        lines = body.splitlines()
        if len(lines) > MAX_IMPORT_LINES:
            msg = f"an import holds at most {MAX_IMPORT_LINES} lines"
            raise InvalidRequestError(msg)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = OutcomeIn.model_validate_json(line)
                records.append(self._resolve(name, item))
            except ValidationError as exc:
                raise invalid_input(exc, f"line {number}") from None
            except InvalidRequestError as exc:
                raise type(exc)(f"line {number}: {exc.message}") from None
        self.store.add_outcomes(records)
        count = self.store.outcome_counts(name).get(name, 0)
        return ImportResult(calibration=name, imported=len(records), outcome_count=count)

    def fit(self, name: str) -> CalibrationFit:
        """Fit ``name`` on its outcomes (held-out split by id) and store the fit."""
        records = self.store.outcomes(name)
        if not records:
            msg = f"no outcomes are recorded under calibration {name!r}"
            raise NotFoundError(msg)
        examples = [
            Example(
                tuple(key(c) for c in r.choices),
                tuple(r.probabilities),
                _outcome_index(r.choices, r.outcome),
            )
            for r in records
        ]
        train, heldout = split([r.id or 0 for r in records], examples)
        report, _ = fit(train, heldout)
        stored = fit_model(self.store.save_fit(name, fit_row(report, len(records))))
        with self._lock:
            self._cache[name] = (time.monotonic() + self.cache_seconds, stored)
        return stored

    def latest(self, name: str) -> CalibrationFit | None:
        """The newest fit of ``name`` (cached for a few seconds)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = self.store.latest_fits(name).get(name)
        found = fit_model(row) if row is not None else None
        with self._lock:
            self._cache[name] = (now + self.cache_seconds, found)
        return found

    def state(self, name: str) -> CalibrationState:
        """Outcome count and newest fit of ``name``."""
        count = self.store.outcome_counts(name).get(name, 0)
        latest = self.latest(name)
        if not count and latest is None:
            msg = f"no outcomes or fits under calibration {name!r}"
            raise NotFoundError(msg)
        return CalibrationState(calibration=name, outcome_count=count, fit=latest)

    def overview(self) -> CalibrationList:
        """Every calibration name with its count and newest fit."""
        counts = self.store.outcome_counts()
        fits = self.store.latest_fits()
        names = sorted(set(counts) | set(fits))
        return CalibrationList(
            calibrations=[
                CalibrationState(
                    calibration=n,
                    outcome_count=counts.get(n, 0),
                    fit=fit_model(fits[n]) if n in fits else None,
                )
                for n in names
            ]
        )

    def calibrate(
        self, name: str, choices: Sequence[Any], probabilities: Sequence[float]
    ) -> tuple[list[float], AppliedCalibration]:
        """``probabilities`` mapped by the newest applied fit of ``name`` (raw if none)."""
        learned = self.learned(name)
        return learned.apply(choices, probabilities), AppliedCalibration(**learned.info)

    def learned(self, name: str) -> LearnedFit:
        """The newest fit of ``name`` as a route applies it (no calibrator: answers stay raw)."""
        latest = self.latest(name)
        if latest is None:
            info = AppliedCalibration(
                name=name, version=None, method=None, applied=False, reason=NO_FIT
            )
            return LearnedFit(name, None, info.model_dump())
        info = AppliedCalibration(
            name=name,
            version=latest.version,
            method=latest.method if latest.applied else None,
            applied=latest.applied,
            reason=latest.reason,
        )
        if not latest.applied or latest.method is None:
            return LearnedFit(name, None, info.model_dump())
        method: Any = latest.method
        return LearnedFit(name, from_params(method, latest.params), info.model_dump())

    async def fitted(self, name: str) -> LearnedFit:
        """``learned`` off the event loop (``CalibrationSource``)."""
        return await asyncio.to_thread(self.learned, name)

    async def record_decision(
        self, decision_id: str, name: str, answers: Sequence[RawAnswer]
    ) -> None:
        """Store a decision's raw answers off the event loop (``CalibrationSource``)."""
        rows = [
            AnswerRecord(decision_id, a.index, a.question, name, a.values, a.probabilities)
            for a in answers
        ]
        await asyncio.to_thread(self.store.record_answers, rows)
