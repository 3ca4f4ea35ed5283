"""The three learned calibration maps, each fitted by maximum likelihood on answered questions.

* ``temperature``: ``q_i ∝ p_i^(1/T)``. One number: it sharpens or flattens every answer the
  same way and never changes which value is on top. Sane on a few dozen outcomes.
* ``platt``: ``q_i ∝ exp(a · ln p_i + b_v)``, a slope and a bias per value ``v`` (Platt
  scaling for two values, its vector-bias form for more): also corrects a model that leans
  toward one value. The biases carry an L2 penalty so an unseen or rare value stays near 0.
* ``isotonic``: per value, a non-decreasing map of its probability to how often it was the
  right one (pool adjacent violators, each block smoothed toward 1/2 by half an outcome,
  linear between block centres), then renormalised (Zadrozny and Elkan's one-vs-rest). No
  shape assumed, so it needs many outcomes.

Probabilities are floored at ``P_FLOOR`` before any log, so a raw 0 (a value outside the
backend's top-k) stays finite. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chains.calibration_metrics import Example

Method = Literal["temperature", "platt", "isotonic"]
P_FLOOR = 1e-12
L2_BIAS = 1.0
"""Penalty on Platt biases, in units of log-likelihood per squared bias (a weak prior)."""
_NEWTON_STEPS = 50


def _softmax(scores: Sequence[float]) -> list[float]:
    peak = max(scores)
    exps = [math.exp(s - peak) for s in scores]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _logs(probs: Sequence[float]) -> list[float]:
    return [math.log(max(p, P_FLOOR)) for p in probs]


@dataclass(frozen=True)
class Temperature:
    """``q_i ∝ p_i^(1/T)``: T > 1 flattens an overconfident model, T < 1 sharpens."""

    temperature: float
    method: Method = "temperature"

    def apply(self, keys: Sequence[str], probs: Sequence[float]) -> list[float]:
        return _softmax([lp / self.temperature for lp in _logs(probs)])

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


@dataclass(frozen=True)
class Platt:
    """``q_i ∝ exp(slope · ln p_i + bias[key_i])``; a key never fitted has bias 0."""

    slope: float
    bias: dict[str, float] = field(default_factory=dict)
    method: Method = "platt"

    def apply(self, keys: Sequence[str], probs: Sequence[float]) -> list[float]:
        logs = _logs(probs)
        return _softmax(
            [self.slope * lp + self.bias.get(k, 0.0) for k, lp in zip(keys, logs, strict=True)]
        )

    def params(self) -> dict[str, Any]:
        return {"slope": self.slope, "bias": dict(self.bias)}


@dataclass(frozen=True)
class Step:
    """A non-decreasing map of [0, 1] onto itself: linear between the (xs, ys) knots."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        hi = next(i for i, knot in enumerate(xs) if knot >= x)
        lo = hi - 1
        span = xs[hi] - xs[lo]
        w = (x - xs[lo]) / span if span > 0 else 1.0
        return ys[lo] + w * (ys[hi] - ys[lo])


@dataclass(frozen=True)
class Isotonic:
    """One step map per value (its probability to how often it was right), renormalised."""

    maps: dict[str, Step]
    method: Method = "isotonic"

    def apply(self, keys: Sequence[str], probs: Sequence[float]) -> list[float]:
        mapped = [
            self.maps[k](p) if k in self.maps else p for k, p in zip(keys, probs, strict=True)
        ]
        total = math.fsum(mapped)
        return [m / total for m in mapped] if total > 0 else list(probs)

    def params(self) -> dict[str, Any]:
        return {"maps": {k: {"xs": list(m.xs), "ys": list(m.ys)} for k, m in self.maps.items()}}


Calibrator = Temperature | Platt | Isotonic


def from_params(method: Method, params: dict[str, Any]) -> Calibrator:
    """Rebuild a fitted map from its method and ``params()`` (as stored)."""
    if method == "temperature":
        return Temperature(float(params["temperature"]))
    if method == "platt":
        bias = {str(k): float(v) for k, v in params["bias"].items()}
        return Platt(float(params["slope"]), bias)
    maps = {
        str(k): Step(tuple(map(float, m["xs"])), tuple(map(float, m["ys"])))
        for k, m in params["maps"].items()
    }
    return Isotonic(maps)


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (the systems here are a few rows)."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-300:
            return [0.0] * n
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= f * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - math.fsum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def _fit_linear(examples: Sequence[Example], keys: list[str]) -> tuple[float, dict[str, float]]:
    """Newton's method on ``-Σ ln q_y + L2_BIAS/2 · Σ b²`` for ``q ∝ exp(a ln p + b_key)``.

    With no ``keys`` only the slope ``a`` is fitted (temperature scaling, ``T = 1/a``). The
    objective is convex; a step is halved until it lowers the objective.
    """
    index = {k: j + 1 for j, k in enumerate(keys)}
    size = 1 + len(keys)
    rows = [(_logs(ex.probs), [index.get(k, 0) for k in ex.keys], ex.outcome) for ex in examples]

    def objective(theta: list[float]) -> float:
        total = L2_BIAS / 2 * math.fsum(t * t for t in theta[1:])
        for logs, slots, y in rows:
            s = [
                theta[0] * lp + (theta[j] if j else 0.0) for lp, j in zip(logs, slots, strict=True)
            ]
            peak = max(s)
            total += peak + math.log(math.fsum(math.exp(v - peak) for v in s)) - s[y]
        return total

    theta = [1.0] + [0.0] * len(keys)
    value = objective(theta)
    for _ in range(_NEWTON_STEPS):
        grad = [0.0] + [L2_BIAS * t for t in theta[1:]]
        hess = [[0.0] * size for _ in range(size)]
        for j in range(1, size):
            hess[j][j] = L2_BIAS
        for logs, slots, y in rows:
            q = _softmax(
                [
                    theta[0] * lp + (theta[j] if j else 0.0)
                    for lp, j in zip(logs, slots, strict=True)
                ]
            )
            # feature vector of value i: slope feature ln p_i, one-hot bias feature at slot j
            mean_l = math.fsum(qi * lp for qi, lp in zip(q, logs, strict=True))
            grad[0] += mean_l - logs[y]
            hess[0][0] += (
                math.fsum(qi * lp * lp for qi, lp in zip(q, logs, strict=True)) - mean_l * mean_l
            )
            for i, (qi, lp, j) in enumerate(zip(q, logs, slots, strict=True)):
                if not j:
                    continue
                grad[j] += qi - (i == y)
                hess[0][j] += qi * (lp - mean_l)
                hess[j][0] += qi * (lp - mean_l)
                hess[j][j] += qi
                for qk, k in zip(q, slots, strict=True):
                    if k:
                        hess[j][k] -= qi * qk
        step = _solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            candidate = [t - scale * s for t, s in zip(theta, step, strict=True)]
            new = objective(candidate)
            if new <= value:
                break
            scale /= 2
        else:
            break
        done = value - new < 1e-10 * max(1.0, abs(value))
        theta, value = candidate, new
        if done:
            break
    return theta[0], {k: theta[index[k]] for k in keys}


def fit_temperature(examples: Sequence[Example]) -> Temperature:
    """The temperature that maximises the likelihood of ``examples`` (clamped to [0.05, 20])."""
    slope, _ = _fit_linear(examples, [])
    slope = min(max(slope, 0.05), 20.0)
    return Temperature(1.0 / slope)


def fit_platt(examples: Sequence[Example]) -> Platt:
    """Slope and per-value biases that maximise the penalised likelihood of ``examples``."""
    keys = sorted({k for ex in examples for k in ex.keys})
    slope, bias = _fit_linear(examples, keys)
    return Platt(slope, bias)


def _pav(points: list[tuple[float, float]]) -> Step:
    """Pool adjacent violators on (probability, 1 if right else 0), sorted by probability."""
    blocks: list[list[float]] = []  # [sum x, sum y, count]
    for x, y in sorted(points):
        blocks.append([x, y, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1] = [blocks[-1][0] + sx, blocks[-1][1] + sy, blocks[-1][2] + n]
    xs = tuple(sx / n for sx, _, n in blocks)
    smoothed = [(sy + 0.5) / (n + 1.0) for _, sy, n in blocks]
    # smoothing a small block toward 1/2 can undo the order: keep the map non-decreasing
    ys = tuple(max(smoothed[: i + 1]) for i in range(len(smoothed)))
    return Step(xs, ys)


def fit_isotonic(examples: Sequence[Example]) -> Isotonic:
    """Per value, pool adjacent violators on (its probability, it was the right one)."""
    points: dict[str, list[tuple[float, float]]] = {}
    for ex in examples:
        for i, (k, p) in enumerate(zip(ex.keys, ex.probs, strict=True)):
            points.setdefault(k, []).append((p, float(i == ex.outcome)))
    return Isotonic({k: _pav(pts) for k, pts in sorted(points.items())})


FITTERS: dict[Method, Callable[[Sequence[Example]], Calibrator]] = {
    "temperature": fit_temperature,
    "platt": fit_platt,
    "isotonic": fit_isotonic,
}
