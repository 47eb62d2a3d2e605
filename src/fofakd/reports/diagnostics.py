"""FOFA's internals per epoch (`diag/*` in metrics.jsonl): are the prompts doing anything?"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..files import write_atomic
from .axes import set_value_axis

# Panel title of each diagnostic family.
PANELS = {
    "beta": "beta (prompt blend weight)",
    "prompt_relative_size": "prompt norm / stage input norm",
    "fd": "feature loss per stage",
    "feedback_rms": "feedback RMS (aligned student - teacher)",
    "raa_entropy": "RAA attention entropy (nats)",
}
_KEY = re.compile(r"diag/(?P<family>[a-z_]+?)(?:_s(?P<stage>\d+))?$")


def diagnostic_series(metrics: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{family: {stage label: [(epoch, value), ...]}} from a run's metrics rows."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for row in metrics:
        for key, value in row.items():
            match = _KEY.match(key)
            if match and match["family"] in PANELS:
                stage = f"stage {match['stage']}" if match["stage"] is not None else ""
                series.setdefault(match["family"], {}).setdefault(stage, []).append((row["epoch"], value))
    return series


def plot_diagnostics(runs: list[dict[str, Any]], out: Path) -> Path | None:
    """diagnostics.png: one panel per diagnostic family, a colour per run and a line style per stage; None when no
    run logged diagnostics."""
    per_run = [(run["label"], diagnostic_series(run["metrics"])) for run in runs]
    families = [f for f in PANELS if any(f in series for _, series in per_run)]
    if not families:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(3, len(families))
    rows = -(-len(families) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    styles = ("-", "--", ":", "-.")
    for ax, family in zip(axes.flat, families):
        values = []
        for i, (label, series) in enumerate(per_run):
            for j, (stage, points) in enumerate(sorted(series.get(family, {}).items())):
                ax.plot(*zip(*points), marker="o", ms=3, color=f"C{i % 10}", linestyle=styles[j % 4],
                        label=f"{label} {stage}".strip())
                values += [v for _, v in points]
        ax.set_title(PANELS[family], fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        set_value_axis(ax, values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(families):]:
        ax.axis("off")
    fig.tight_layout()
    path = write_atomic(out / "diagnostics.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
