"""FOFA's internals as the accuracy report shows them: at the end of training, the prompts' blend weights and
relative size, the region-aware attention's entropy and the feature loss, per stage, averaged over seeds; and the
attention's entropy over training."""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

STAGES = range(4)
UNIFORM_ENTROPY = math.log(64)  # FOFA's 64 region tokens: the most the attention's entropy can be


def final_diagnostics(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Last-epoch diagnostics, averaged over seeds."""
    last = [r["diagnostics"][-1] for r in runs if r.get("diagnostics")]
    keys = sorted({k for row in last for k in row if k.startswith("diag/")})
    return {k.removeprefix("diag/"): statistics.mean(row[k] for row in last if k in row) for k in keys}


def internals_lines(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    """A markdown table with one row per (name, diagnostics); rows without diagnostics are left out."""

    def num(d: dict[str, float], key: str, fmt: str = ".3g") -> str:
        return format(d[key], fmt) if key in d else "-"

    lines = ["| run | " + " | ".join(f"beta s{i}" for i in STAGES) + " | "
             + " | ".join(f"prompt/input s{i}" for i in STAGES) + " | RAA entropy (nats, max 4.16) | "
             + " | ".join(f"fd s{i}" for i in STAGES) + " |", "|---" * (2 + 3 * len(STAGES)) + "|"]
    for name, d in rows:
        if d:
            lines.append(f"| {name} | " + " | ".join(num(d, f"beta_s{i}") for i in STAGES) + " | "
                         + " | ".join(num(d, f"prompt_relative_size_s{i}") for i in STAGES) + " | "
                         + num(d, "raa_entropy", ".3f") + " | " + " | ".join(num(d, f"fd_s{i}") for i in STAGES)
                         + " |")
    return lines


def entropy_trace(run: dict[str, Any], steps_per_epoch: int) -> dict[str, Any]:
    """The region-aware attention's entropy at the end of each epoch of one run, against the optimiser step."""
    rows = [row for row in run.get("diagnostics") or [] if "diag/raa_entropy" in row]
    return {"seed": run["seed"], "steps": [row["epoch"] * steps_per_epoch for row in rows],
            "entropy": [row["diag/raa_entropy"] for row in rows]}


def plot_entropy_traces(series: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """One line per run, one colour per series, with the entropy of uniform attention for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for colour, (name, traces) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], series.items()):
        for i, trace in enumerate(traces):
            ax.plot(trace["steps"], trace["entropy"], color=colour, lw=1.2, alpha=0.85,
                    label=f"{name} ({len(traces)} seed{'s' if len(traces) > 1 else ''})" if i == 0 else None)
    ax.axhline(UNIFORM_ENTROPY, color="k", ls="--", lw=1, label=f"uniform attention ({UNIFORM_ENTROPY:.2f})")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("RAA attention entropy (nats)")
    ax.set_title("FOFA on ResNet -> ViT: the region-aware attention stops sharpening early", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
