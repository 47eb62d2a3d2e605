"""Axis choices shared by the report's plots."""
from __future__ import annotations

import math
from typing import Any


def set_value_axis(ax: Any, values: list[float]) -> None:
    """Log scale only where the values are positive and span more than a factor of 10 (a loss falling over
    epochs); otherwise a plain axis without offsets, with room around a single value."""
    from matplotlib.ticker import ScalarFormatter

    values = [v for v in values if math.isfinite(v)]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
        return
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(not values or max(abs(v) for v in values) < 1e-3)  # tiny values keep their exponent
    ax.yaxis.set_major_formatter(formatter)
    if values and max(values) - min(values) <= 1e-12 * max(1.0, abs(max(values))):
        pad = 0.05 * abs(values[0]) or 1e-3
        ax.set_ylim(values[0] - pad, values[0] + pad)
