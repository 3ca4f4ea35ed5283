"""A fit as stored (a ``calibration_fits`` row) and as answered (``CalibrationFit``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from chains.calibration_fit import FitReport
from langserve_logprobs.calibration.schemas import CalibrationFit

REPORT_KEYS = (
    "train_count",
    "heldout_count",
    "before",
    "after",
    "bins_before",
    "bins_after",
    "candidates",
)


def utc(when: datetime) -> datetime:
    """``when`` with its zone: SQLite keeps none, and every time stored here is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def fit_model(row: dict[str, Any]) -> CalibrationFit:
    """A stored fit as the API answers it."""
    report = row["report"]
    return CalibrationFit(
        version=row["id"],
        calibration=row["calibration"],
        method=row["method"],
        params=row["params"],
        applied=row["applied"],
        reason=row["reason"],
        outcome_count=row["outcome_count"],
        train_count=report["train_count"],
        heldout_count=report["heldout_count"],
        before=report["before"],
        after=report["after"],
        reliability_before=report["bins_before"],
        reliability_after=report["bins_after"],
        candidates=report["candidates"],
        created_at=utc(row["created_at"]),
    )


def fit_row(report: FitReport, outcome_count: int) -> dict[str, Any]:
    """A fit's report as a ``calibration_fits`` row (without its name and time)."""
    data = asdict(report)
    return {
        "method": report.method,
        "params": report.params,
        "applied": report.applied,
        "reason": report.reason,
        "outcome_count": outcome_count,
        "report": {k: data[k] for k in REPORT_KEYS},
    }
