"""Calibration math: metrics on hand-worked cases, each fit recovering a known distortion."""

from __future__ import annotations

import math
import random

import pytest

from chains.calibration_fit import (
    HELDOUT_SHARE,
    ISOTONIC_MIN_TRAIN,
    PLATT_MIN_TRAIN,
    eligible,
    fit,
    is_heldout,
    split,
)
from chains.calibration_methods import (
    Isotonic,
    Platt,
    Step,
    Temperature,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    from_params,
)
from chains.calibration_metrics import Example, brier, ece, log_loss, reliability, scores

KEYS = ('"negative"', '"positive"')


def binary(p_positive: float, positive: bool) -> Example:
    return Example(KEYS, (1 - p_positive, p_positive), int(positive))


def overconfident(n: int, power: float, seed: int = 0, lean: float = 0.0) -> list[Example]:
    """Outcomes drawn from true probabilities, reported sharpened as ``p ** power``.

    ``lean`` adds to the reported log-odds of "positive": a model leaning one way.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        truth = rng.uniform(0.05, 0.95)
        logit = power * math.log(truth / (1 - truth)) + lean
        shown = 1 / (1 + math.exp(-logit))
        out.append(binary(shown, rng.random() < truth))
    return out


def test_metrics_hand_worked() -> None:
    examples = [binary(0.9, True), binary(0.9, False), binary(0.3, False), binary(0.6, True)]
    # confidences: 0.9 (right), 0.9 (wrong), 0.7 (right), 0.6 (right)
    table = reliability(examples)
    assert [b.count for b in table] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 2]
    assert table[9].accuracy == 0.5 and table[9].confidence == pytest.approx(0.9)
    assert ece(examples) == pytest.approx((2 * 0.4 + 0.3 + 0.4) / 4)
    assert brier(examples) == pytest.approx((0.02 + 1.62 + 0.18 + 0.32) / 4)
    expected = -(math.log(0.9) + math.log(0.1) + math.log(0.7) + math.log(0.6)) / 4
    assert log_loss(examples) == pytest.approx(expected)


def test_log_loss_of_a_zero_is_finite() -> None:
    assert math.isfinite(log_loss([binary(1.0, False)]))
    assert log_loss([binary(1.0, False)]) == pytest.approx(-math.log(1e-15))


def test_temperature_recovers_the_sharpening() -> None:
    fitted = fit_temperature(overconfident(3000, power=3.0))
    assert fitted.temperature == pytest.approx(3.0, rel=0.15)
    probs = fitted.apply(KEYS, (0.1, 0.9))
    assert sum(probs) == pytest.approx(1.0)
    assert probs[1] < 0.9  # flattened, same top value


def test_platt_recovers_slope_and_lean() -> None:
    fitted = fit_platt(overconfident(3000, power=2.0, lean=1.5, seed=1))
    assert fitted.slope == pytest.approx(0.5, rel=0.15)
    lean = fitted.bias['"positive"'] - fitted.bias['"negative"']
    assert lean == pytest.approx(-0.75, abs=0.2)  # undoes +1.5 on the sharpened scale
    # an unseen value has bias 0, so it now wins a tie against the leaned-toward value
    assert fitted.apply(('"unseen"', '"positive"'), (0.5, 0.5))[0] > 0.5


def test_isotonic_is_monotone_and_helps() -> None:
    data = overconfident(2000, power=3.0, seed=2, lean=1.0)
    fitted = fit_isotonic(data)
    assert set(fitted.maps) == set(KEYS)
    for step in fitted.maps.values():
        assert list(step.ys) == sorted(step.ys) and all(0 < y < 1 for y in step.ys)
    calibrated = [ex.with_probs(fitted.apply(ex.keys, ex.probs)) for ex in data]
    assert ece(calibrated) < ece(data) / 2
    assert log_loss(calibrated) < log_loss(data)


def test_isotonic_maps_each_value_then_renormalises() -> None:
    iso = Isotonic({"a": Step((0.5, 1.0), (0.5, 0.8)), "b": Step((0.0, 1.0), (0.1, 0.1))})
    probs = iso.apply(("a", "b", "c"), (0.8, 0.15, 0.05))
    # a: 0.5 + 0.6 * 0.3 = 0.68; b: 0.1; c (never fitted) keeps 0.05; then / 0.83
    assert probs == pytest.approx([0.68 / 0.83, 0.1 / 0.83, 0.05 / 0.83])
    assert iso.apply(("x", "y"), (0.3, 0.7)) == [0.3, 0.7]  # values it never saw: unchanged


@pytest.mark.parametrize(
    "calibrator",
    [
        pytest.param(Temperature(2.5), id="temperature"),
        pytest.param(Platt(0.7, {'"a"': 0.3}), id="platt"),
        pytest.param(Isotonic({'"a"': Step((0.4, 0.9), (0.45, 0.7))}), id="isotonic"),
    ],
)
def test_params_round_trip(calibrator: Temperature | Platt | Isotonic) -> None:
    again = from_params(calibrator.method, calibrator.params())
    probs = (0.2, 0.8)
    assert again.apply(('"a"', '"b"'), probs) == calibrator.apply(('"a"', '"b"'), probs)


def test_split_is_fixed_and_near_the_share() -> None:
    ids = list(range(1, 2001))
    held = [i for i in ids if is_heldout(i)]
    assert abs(len(held) / len(ids) - HELDOUT_SHARE) < 0.03
    assert held == [i for i in ids if is_heldout(i)]
    train, heldout = split(ids[:10], [binary(0.5, True)] * 10)
    assert len(train) + len(heldout) == 10


def test_eligible_follows_the_thresholds() -> None:
    assert eligible(10) == ["temperature"]
    assert eligible(PLATT_MIN_TRAIN) == ["temperature", "platt"]
    assert eligible(ISOTONIC_MIN_TRAIN) == ["temperature", "platt", "isotonic"]


def test_fit_applies_when_it_helps_held_out() -> None:
    data = overconfident(300, power=4.0, seed=3)
    report, calibrator = fit(data[:200], data[200:])
    assert report.applied and calibrator is not None
    assert report.after.log_loss < report.before.log_loss
    assert report.after.ece < report.before.ece
    assert report.before == scores(data[200:])
    assert sum(b.count for b in report.bins_after) == 100
    assert set(report.candidates) == {"temperature", "platt", "isotonic"}


def test_fit_that_would_worsen_log_loss_is_not_applied() -> None:
    # Fitted on sharpened outcomes, judged on outcomes that are already calibrated: the
    # flattening hurts there, so it must not be applied.
    report, calibrator = fit(overconfident(200, power=4.0, seed=4), overconfident(80, 1.0, 5))
    assert not report.applied and calibrator is None
    assert report.after.log_loss >= report.before.log_loss
    assert report.reason.startswith("not applied")


def test_too_few_outcomes_fit_nothing() -> None:
    report, calibrator = fit([binary(0.9, True)] * 5, [binary(0.9, False)] * 3)
    assert calibrator is None and not report.applied and report.method is None
    assert "at least" in report.reason
