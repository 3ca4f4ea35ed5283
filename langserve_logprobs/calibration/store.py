"""The calibration database's queries, each in one transaction (``Database.begin``).

Concurrent writers lose nothing: every outcome is one INSERT with a database-made id, and a
bulk import is one transaction of INSERTs (all lines or none). SQLite serialises writers
(WAL, busy timeout), PostgreSQL runs them side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from langserve_logprobs.calibration.db import Database
from langserve_logprobs.calibration.tables import calibration_fits, decision_answers, outcomes


@dataclass(frozen=True)
class AnswerRecord:
    """One answer of a decision, as recorded: its values and raw distribution."""

    decision_id: str
    answer_index: int
    question: str | None
    calibration: str
    choices: list[Any]
    probabilities: list[float]


@dataclass(frozen=True)
class OutcomeRecord:
    """An outcome to store (or as stored, with its id)."""

    calibration: str
    choices: list[Any]
    probabilities: list[float]
    outcome: Any
    decision_id: str | None = None
    answer_index: int | None = None
    id: int | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class CalibrationStore:
    """Reads and writes decision answers, outcomes and fits."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record_answers(self, answers: Sequence[AnswerRecord]) -> None:
        """Store the answers of a decision made with a calibration name."""
        if not answers:
            return
        rows = [
            {
                "decision_id": a.decision_id,
                "answer_index": a.answer_index,
                "question": a.question,
                "calibration": a.calibration,
                "choices": a.choices,
                "probabilities": a.probabilities,
                "created_at": _now(),
            }
            for a in answers
        ]
        with self.database.begin() as conn:
            conn.execute(insert(decision_answers), rows)

    def answers(self, decision_id: str) -> list[AnswerRecord]:
        """The recorded answers of a decision, in question order (empty if unknown)."""
        query = (
            select(decision_answers)
            .where(decision_answers.c.decision_id == decision_id)
            .order_by(decision_answers.c.answer_index)
        )
        with self.database.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AnswerRecord(
                decision_id=r["decision_id"],
                answer_index=r["answer_index"],
                question=r["question"],
                calibration=r["calibration"],
                choices=list(r["choices"]),
                probabilities=[float(p) for p in r["probabilities"]],
            )
            for r in rows
        ]

    def add_outcomes(self, items: Sequence[OutcomeRecord]) -> list[int]:
        """Insert ``items`` in one transaction; their new ids, in order."""
        ids: list[int] = []
        with self.database.begin() as conn:
            for item in items:
                result = conn.execute(
                    insert(outcomes).returning(outcomes.c.id),
                    {
                        "calibration": item.calibration,
                        "decision_id": item.decision_id,
                        "answer_index": item.answer_index,
                        "choices": item.choices,
                        "probabilities": item.probabilities,
                        "outcome": item.outcome,
                        "created_at": _now(),
                    },
                )
                ids.append(int(result.scalar_one()))
        return ids

    def outcomes(self, calibration: str) -> list[OutcomeRecord]:
        """Every outcome recorded under ``calibration``, oldest first."""
        query = (
            select(outcomes).where(outcomes.c.calibration == calibration).order_by(outcomes.c.id)
        )
        with self.database.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            OutcomeRecord(
                calibration=r["calibration"],
                choices=list(r["choices"]),
                probabilities=[float(p) for p in r["probabilities"]],
                outcome=r["outcome"],
                decision_id=r["decision_id"],
                answer_index=r["answer_index"],
                id=int(r["id"]),
            )
            for r in rows
        ]

    def outcome_counts(self, calibration: str | None = None) -> dict[str, int]:
        """Outcomes recorded under each calibration name (or under the one named)."""
        query = select(outcomes.c.calibration, func.count()).group_by(outcomes.c.calibration)
        if calibration is not None:
            query = query.where(outcomes.c.calibration == calibration)
        with self.database.begin() as conn:
            return {str(name): int(n) for name, n in conn.execute(query).all()}

    def save_fit(self, calibration: str, row: dict[str, Any]) -> dict[str, Any]:
        """Store a fit (method, params, applied, reason, outcome_count, report); it as stored."""
        values = {**row, "calibration": calibration, "created_at": _now()}
        with self.database.begin() as conn:
            new_id = conn.execute(
                insert(calibration_fits).returning(calibration_fits.c.id), values
            ).scalar_one()
        return {**values, "id": int(new_id)}

    def latest_fits(self, calibration: str | None = None) -> dict[str, dict[str, Any]]:
        """The newest fit of each calibration name (or of the one named)."""
        newest = select(func.max(calibration_fits.c.id)).group_by(calibration_fits.c.calibration)
        if calibration is not None:
            newest = newest.where(calibration_fits.c.calibration == calibration)
        query = select(calibration_fits).where(calibration_fits.c.id.in_(newest))
        with self.database.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return {str(r["calibration"]): dict(r) for r in rows}
