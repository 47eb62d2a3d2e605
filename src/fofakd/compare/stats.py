"""Paired statistics over seeds: each method minus a reference, seed by seed, with a 95 % t interval."""
from __future__ import annotations

import math
import statistics
from typing import Any


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz's method)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularised_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: int) -> float:
    """P(T <= t) for Student's t with `dof` degrees of freedom."""
    tail = 0.5 * regularised_beta(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, dof: int) -> float:
    """The t value below which a fraction `p` of Student's t distribution lies (bisection on the CDF)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, dof) < p else (low, mid)
    return (low + high) / 2


def paired(values: dict[int, float], reference: dict[int, float], level: float = 0.95) -> dict[str, Any]:
    """`values` minus `reference` over the seeds both have: per-seed differences, their mean, a `level` t interval
    and a verdict (leads / trails when the interval excludes 0, else cannot tell).

    Equal differences on every seed (accuracies on a fixed evaluation set are quantised, so two seeds can tie) give
    a t interval of width zero: that is no estimate of the noise, so the verdict stays "cannot tell"."""
    seeds = sorted(set(values) & set(reference))
    diffs = [values[s] - reference[s] for s in seeds]
    out: dict[str, Any] = {"seeds": seeds, "differences": diffs, "mean": statistics.mean(diffs) if diffs else None,
                           "interval": None, "verdict": "cannot tell"}
    if len(diffs) < 2:
        out["verdict"] = "cannot tell (one seed)" if diffs else "cannot tell (no common seed)"
        return out
    if max(diffs) - min(diffs) <= 1e-9 * max(1.0, abs(out["mean"])):  # equal up to float rounding
        out["verdict"] = "cannot tell (the same difference on every seed)"
        return out
    half = t_quantile(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    low, high = out["mean"] - half, out["mean"] + half
    out["interval"] = [low, high]
    out["verdict"] = "leads" if low > 0 else "trails" if high < 0 else "cannot tell"
    return out
