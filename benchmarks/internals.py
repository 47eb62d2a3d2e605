"""FOFA's internals at the end of training, as the accuracy report tabulates them: the prompts' blend weights and
relative size, the region-aware attention's entropy and the feature loss, per stage, averaged over seeds."""
from __future__ import annotations

import statistics
from typing import Any

STAGES = range(4)


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
