"""Comparison reports from run directories: a markdown table, results.json and plots."""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from ..engine.config import run_task
from ..errors import FofakdError
from ..files import write_atomic, write_text
from .axes import set_value_axis
from .diagnostics import plot_diagnostics


def read_run(path: str | Path) -> dict[str, Any]:
    """A run directory's config, per-epoch metrics and summary."""
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise FofakdError(f"'{path}' is not a fofakd run directory (no metrics.jsonl); pass run directories.")
    config = _read(path / "config.yaml", yaml.safe_load) or {}
    if run_task(config) != "classification":
        raise FofakdError(f"'{path}' is a detection run; reports compare classification runs (each detection run's "
                          "summary.json holds its mAP).")
    summary = _read(path / "summary.json", json.loads) or {}
    rows = _read(metrics, lambda text: [json.loads(line) for line in text.splitlines() if line.strip()])
    label = summary.get("method") or ("scratch" if config.get("model") else config.get("method", path.name))
    return {"path": str(path), "label": label, "config": config, "summary": summary, "metrics": rows}


def _read(path: Path, parse: Any) -> Any:
    """A run file parsed, None when absent; a damaged file gets one sentence naming it."""
    if not path.is_file():
        return None
    try:
        value = parse(path.read_text())
    except (ValueError, yaml.YAMLError, UnicodeDecodeError):
        value = "damaged"
    if value is not None and not isinstance(value, (dict, list)):
        raise FofakdError(f"'{path}' is damaged (it does not parse); restore it, or leave its run out of the report.")
    return value


def finished(run: dict[str, Any]) -> bool:
    """Whether a run has its final test score (an unfinished run's last validation score is no test score)."""
    return run["summary"].get("test_top1") is not None


def data_key(run: dict[str, Any]) -> str:
    """What makes two runs' scores comparable: the task, the data (its folder, for image folders), the image size
    and the student, e.g. "classification on fashion-mnist at 28 px, student resnet10t"."""
    config = run["config"]
    data = str(config.get("data", "?"))
    if data == "imagefolder":
        data += f" {config.get('data_dir')}"
    student = config.get("student") or config.get("model") or "?"
    size = f" at {config['img_size']} px" if config.get("img_size") else ""
    return f"{run_task(config)} on {data}{size}, student {student}"


def check_comparable(runs: list[dict[str, Any]]) -> None:
    """Refuse runs of different data, image sizes, students or tasks: their scores cannot share a table."""
    keys = list(dict.fromkeys(data_key(r) for r in runs))
    if len(keys) > 1:
        raise FofakdError(f"the runs are not comparable ({'; '.join(keys)}); report each data set and student "
                          "separately.")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per label: mean and spread over the finished runs (seeds) that share it; unfinished runs are
    left out (`write_report` lists them)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if finished(run):
            groups[run["label"]].append(run)
    table = []
    for label, members in groups.items():
        def values(key: str) -> list[float]:
            out = [m["summary"].get(key) for m in members]
            return [v for v in out if v is not None]

        top1 = values("test_top1")
        speeds = [statistics.mean(r["train_images_per_s"] for r in m["metrics"]) for m in members if m["metrics"]]
        table.append({
            "method": label, "runs": len(members),
            "top1_mean": statistics.mean(top1), "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
            "top1_all": top1,
            "train_time_s": statistics.mean(values("train_time_s")) if values("train_time_s") else None,
            "images_per_s": statistics.mean(speeds) if speeds else None,
            "extra_parameters": members[0]["summary"].get("extra_parameters"),
        })
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    lines = ["| method | runs | test top-1 (%) | train time (s) | images/s | extra training-only parameters |",
             "|---|---|---|---|---|---|"]
    for row in table:
        spread = f" ± {row['top1_std']:.2f}" if row["runs"] > 1 else ""
        time_s = f"{row['train_time_s']:.0f}" if row["train_time_s"] is not None else "-"
        speed = f"{row['images_per_s']:.0f}" if row["images_per_s"] is not None else "-"
        extra = f"{row['extra_parameters'] / 1e6:.2f} M" if row["extra_parameters"] else "0"
        lines.append(f"| {row['method']} | {row['runs']} | {row['top1_mean']:.2f}{spread} | {time_s} | {speed} | "
                     f"{extra} |")
    return "\n".join(lines)


def plot_curves(runs: list[dict[str, Any]], out: Path) -> Path:
    """Validation top-1 and every loss part per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    labels = list(dict.fromkeys(r["label"] for r in runs))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    repeats = {label: sum(r["label"] == label for r in runs) for label in labels}
    parts = sorted({k for r in runs for row in r["metrics"] for k in row if k.startswith("loss")})
    panels = ["val_top1", *parts]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels):
        seen: dict[str, int] = {}
        for run in runs:
            label = run["label"]
            seen[label] = seen.get(label, 0) + 1
            name = label if repeats[label] == 1 else f"{label} (seed {run['config'].get('seed', seen[label])})"
            points = [(row["epoch"], row[key]) for row in run["metrics"] if key in row]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, color=colours[label], alpha=0.85, label=name,
                        linestyle=("-", "--", ":", "-.")[(seen[label] - 1) % 4])
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        set_value_axis(ax, [row[key] for run in runs for row in run["metrics"] if key in row])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    path = write_atomic(out / "curves.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def plot_accuracy(table: list[dict[str, Any]], out: Path, title: str = "test top-1") -> Path:
    """Bar chart of mean top-1 with the standard deviation over runs, and each run as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.3 * len(table) + 2, 3.6))
    names = [row["method"] for row in table]
    ax.bar(names, [row["top1_mean"] for row in table], yerr=[row["top1_std"] for row in table], capsize=4,
           color="#7aa6c2")
    for i, row in enumerate(table):
        ax.scatter([i] * len(row["top1_all"]), row["top1_all"], color="k", s=10, zorder=3)
        top = max([row["top1_mean"] + row["top1_std"], *row["top1_all"]])
        ax.text(i, top + 0.3, f"{row['top1_mean']:.1f}", ha="center", va="bottom", fontsize=8)
    low = min(min(r["top1_all"]) for r in table)
    ax.set_ylim(max(0.0, low - 10), min(100.0, max(r["top1_mean"] + r["top1_std"] for r in table) + 5))
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = write_atomic(out / "accuracy.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def default_title(runs: list[dict[str, Any]]) -> str:
    """"kd, fofa: deit_tiny_patch16_224 from resnet10t on fashion-mnist", from the runs' configs."""
    def names(key: str) -> str:
        return ", ".join(dict.fromkeys(str(r["config"].get(key) or "?") for r in runs))

    methods = ", ".join(dict.fromkeys(r["label"] for r in runs))
    students = ", ".join(dict.fromkeys(str(r["config"].get("student") or r["config"].get("model") or "?")
                                       for r in runs))
    teachers = ", ".join(dict.fromkeys(str(r["config"].get("teacher") or r["config"].get("teacher_checkpoint"))
                                       for r in runs if r["config"].get("method") != "scratch"
                                       and (r["config"].get("teacher") or r["config"].get("teacher_checkpoint"))))
    source = f" from {teachers}" if teachers else ""
    return f"{methods}: {students}{source} on {names('data')}"


def write_report(run_dirs: list[str | Path], out: str | Path, title: str | None = None,
                 notes: str = "", show_table: bool = True) -> dict[str, Any]:
    """report.md, results.json, curves.png and accuracy.png in `out` for the given runs (the title, when not
    given, says which methods, student, teacher and data)."""
    if not run_dirs:
        raise FofakdError("no run directories given; pass one or more fofakd run directories.")
    out = Path(out)
    check_report_folder(out)
    runs = [read_run(p) for p in run_dirs]
    check_comparable(runs)
    table = summarise(runs)
    unfinished = [r for r in runs if not finished(r)]
    title = title or default_title(runs)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(runs, out)
    if table:
        plot_accuracy(table, out)
    diagnostics = plot_diagnostics(runs, out)
    results = {"title": title, "data": data_key(runs[0]), "table": table,
               "runs": [{k: r[k] for k in ("path", "label", "summary")} | {"finished": finished(r)} for r in runs]}
    pending = "".join(f"- {r['path']} ({r['label']}): epoch {len(r['metrics'])} of "
                      f"{r['config'].get('epochs', '?')}\n" for r in unfinished)
    scores = (f"{markdown_table(table)}\n\n![accuracy](accuracy.png)" if table
              else "No run has finished, so there is no test score yet.")
    write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(out / "report.md",
               f"# {title}\n\n{notes}\n\n{scores if show_table else ''}\n\n"
               + (f"Unfinished runs, not scored (resume them to score them):\n\n{pending}\n" if pending else "")
               + "Validation top-1 and loss parts per epoch:\n\n![curves](curves.png)\n"
               + ("\nFOFA's internals per epoch (beta, prompt size, feature loss and feedback per stage, RAA "
                  "attention entropy):\n\n![diagnostics](diagnostics.png)\n" if diagnostics else ""))
    return results


REPORT_FILES = ("report.md", "results.json", "curves.png", "accuracy.png", "diagnostics.png")


def check_report_folder(out: Path) -> None:
    """Refuse a file as the folder, or a folder holding report files that an earlier fofakd report did not write."""
    if out.exists() and not out.is_dir():
        raise FofakdError(f"--out '{out}' is a file; the report needs a folder (it writes report.md and plots).")
    present = [name for name in REPORT_FILES if (out / name).exists()]
    if not present:
        return
    try:
        earlier = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        earlier = None
    # A report's results.json, or (before compare's held the report's keys too) a comparison's.
    ours = isinstance(earlier, dict) and ({"title", "table", "runs"} <= set(earlier)
                                          or {"methods", "reference", "recommendation"} <= set(earlier))
    if not ours:
        raise FofakdError(f"'{out}' holds {', '.join(present)}, which no fofakd report wrote; choose another --out.")
