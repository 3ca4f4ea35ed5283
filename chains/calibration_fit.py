"""Fit a calibration on outcomes and judge it on outcomes it never saw.

Outcomes are split by id (``is_heldout``: a fixed hash, so the same outcomes always give the
same split and the same fit): ``HELDOUT_SHARE`` of them are held out. Every method eligible
for the training count is fitted on the rest, and the one with the lowest held-out log loss
is kept. The counts come from ``bench/bench_calibration.py --curve`` (four synthetic kinds
of miscalibration, each method fitted on N outcomes, judged on 4000): with 10 training
outcomes temperature and Platt overfit (1.5-1.8 nats, worse than raw), hence
``MIN_OUTCOMES`` (about 20 to fit on); from 20 Platt beats temperature on a model that leans
to one value or is bent, and costs at most 0.015 nats on the others (``PLATT_MIN_TRAIN``);
from 40 isotonic costs at most 0.015 nats on the parametric kinds and wins on the bent one
(``ISOTONIC_MIN_TRAIN``). The fit is applied only if its held-out log loss is lower than
the raw one: a fit that would make held-out log loss worse is reported, with its figures,
and not applied.

The held-out set both picks among at most three candidates and reports their figures, so
the figures are a little optimistic; the bench fits on one half of its data and reports the
other half. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chains.calibration_methods import FITTERS, Calibrator, Method
from chains.calibration_metrics import Bin, Example, Scores, reliability, scores

HELDOUT_SHARE = 0.3
MIN_OUTCOMES = 30
"""Fewer outcomes than this (about 20 to fit on): nothing is fitted."""
PLATT_MIN_TRAIN = 20
ISOTONIC_MIN_TRAIN = 40
THRESHOLDS: dict[Method, int] = {
    "temperature": 0,
    "platt": PLATT_MIN_TRAIN,
    "isotonic": ISOTONIC_MIN_TRAIN,
}


def is_heldout(outcome_id: int) -> bool:
    """Whether an outcome is held out: Knuth's multiplicative hash of its id, as a fraction."""
    return (outcome_id * 2654435761) % 2**32 < HELDOUT_SHARE * 2**32


def split(ids: Sequence[int], examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """``examples`` (with their outcome ids) as (training, held-out)."""
    train = [ex for i, ex in zip(ids, examples, strict=True) if not is_heldout(i)]
    heldout = [ex for i, ex in zip(ids, examples, strict=True) if is_heldout(i)]
    return train, heldout


@dataclass(frozen=True)
class FitReport:
    """What a fit chose, whether it is applied and why, and its held-out figures."""

    method: Method | None
    params: dict[str, Any]
    applied: bool
    reason: str
    train_count: int
    heldout_count: int
    before: Scores
    after: Scores
    bins_before: list[Bin]
    bins_after: list[Bin]
    candidates: dict[Method, float] = field(default_factory=dict)
    """Held-out log loss of each method tried."""


def eligible(train_count: int) -> list[Method]:
    """The methods a training set of this size may fit, simplest first."""
    return [m for m, least in THRESHOLDS.items() if train_count >= least]


def apply(calibrator: Calibrator, examples: Sequence[Example]) -> list[Example]:
    """``examples`` with their distributions calibrated."""
    return [ex.with_probs(calibrator.apply(ex.keys, ex.probs)) for ex in examples]


def fit(
    train: Sequence[Example], heldout: Sequence[Example]
) -> tuple[FitReport, Calibrator | None]:
    """Fit every eligible method on ``train``, keep the best on ``heldout`` if it helps.

    Returns:
        The report, and the calibrator to apply (None when nothing is applied).
    """
    before = scores(heldout)
    bins_before = reliability(heldout)

    def refused(reason: str, method: Method | None = None, **extra: Any) -> FitReport:
        return FitReport(
            method=method,
            params=extra.pop("params", {}),
            applied=False,
            reason=reason,
            train_count=len(train),
            heldout_count=len(heldout),
            before=before,
            after=extra.pop("after", before),
            bins_before=bins_before,
            bins_after=extra.pop("bins_after", bins_before),
            candidates=extra.pop("candidates", {}),
        )

    if len(train) + len(heldout) < MIN_OUTCOMES or not train or not heldout:
        total = len(train) + len(heldout)
        return refused(
            f"{total} outcomes ({len(train)} to fit, {len(heldout)} held out): a fit needs at "
            f"least {MIN_OUTCOMES} with some in each part"
        ), None
    fitted = {m: FITTERS[m](train) for m in eligible(len(train))}
    outcomes = {m: apply(c, heldout) for m, c in fitted.items()}
    losses = {m: scores(o).log_loss for m, o in outcomes.items()}
    best: Method = min(losses, key=lambda m: losses[m])
    after = scores(outcomes[best])
    if not after.log_loss < before.log_loss:
        reason = (
            f"not applied: {best} would change held-out log loss from {before.log_loss:.4f} "
            f"to {after.log_loss:.4f}"
        )
        return refused(
            reason,
            best,
            params=fitted[best].params(),
            after=after,
            bins_after=reliability(outcomes[best]),
            candidates=dict(losses),
        ), None
    report = FitReport(
        method=best,
        params=fitted[best].params(),
        applied=True,
        reason=(
            f"applied: {best} lowers held-out log loss from {before.log_loss:.4f} to "
            f"{after.log_loss:.4f} and ECE from {before.ece:.4f} to {after.ece:.4f}"
        ),
        train_count=len(train),
        heldout_count=len(heldout),
        before=before,
        after=after,
        bins_before=bins_before,
        bins_after=reliability(outcomes[best]),
        candidates=dict(losses),
    )
    return report, fitted[best]
