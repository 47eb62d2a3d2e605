"""The accuracy benchmark's report: accuracy.json, accuracy.md and accuracy.png from the run records."""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import matched as bench
from internals import UNIFORM_ENTROPY, entropy_trace, final_diagnostics, internals_lines, plot_entropy_traces
from paired_report import (aggregate, cell, collect_paper_like, group, matched_paired, paired_lines,
                           paper_like_markdown)

# The options the investigation may change, with the current default first: {option: {value: variant label}}.
DECISIONS = {
    "pos_embed": {"fixed": "fofa", "reference": "pos_embed=reference"},
    "se_mode": {"bias": "fofa", "gate": "se_mode=gate"},
    "init": {"fofakd": "fofa", "reference": "init=reference"},
    "fd_weight": {"1.0": "fofa", "0.3": "fd_weight=0.3", "0.1": "fd_weight=0.1"},
    "fd_warmup_steps": {"0": "fofa", "30% of steps": "fd warm-up (first 30% of steps)"},
    "target_norm": {"none": "fofa", "layer": "target_norm=layer"},
    "num_queries": {"64": "fofa", "256": "num_queries=256"},
}
LADDER_LABELS = {"full FOFA": "fofa"}


def decide(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The noise-margin rule: the current default (first) stays unless another value's mean validation top-1 beats
    it by more than the larger of the two standard deviations over seeds."""
    (current, base), *others = rows.items()
    chosen, best, candidates = current, base["val_mean"], []
    for value, row in others:
        if row["val_mean"] <= base["val_mean"]:
            continue
        if min(base["seeds"], row["seeds"]) < 2:  # one seed has no spread to judge by: a candidate to confirm
            candidates.append(value)
            continue
        margin = max(base["val_std"], row["val_std"])
        if row["val_mean"] - base["val_mean"] > margin and row["val_mean"] > best:
            chosen, best = value, row["val_mean"]
    return {"chosen": chosen, "to_confirm": candidates, "val_mean": {v: r["val_mean"] for v, r in rows.items()},
            "val_std": {v: r["val_std"] for v, r in rows.items()}, "seeds": {v: r["seeds"] for v, r in rows.items()}}


def collect(records: dict[str, dict[str, Any]], geometry: dict[str, Any]) -> dict[str, Any]:
    teachers = json.loads((bench.TEACHER_DIR / "teachers.json").read_text())
    pairs: dict[str, Any] = {}
    for t, s in bench.PAIRS:
        name = f"{t} -> {s}"
        if t not in teachers:
            continue  # not trained yet
        methods = {m: aggregate(runs) for m in bench.METHODS if (runs := group(records, name, m))}
        scratch_best = max((r["test_top1"] for r in methods.get("scratch", {}).get("runs", [])), default=None)
        pairs[name] = {
            "teacher": t, "student": s, "teacher_test_top1": teachers[t]["test_top1"],
            "teacher_grids": geometry["teachers"][t]["grids"], "student_grids": geometry["students"][s]["grids"],
            "steps_per_run": bench.EPOCHS * bench.STEPS_PER_EPOCH, "train_images": bench.TRAIN_IMAGES,
            "best_scratch_test_top1": scratch_best,
            "teacher_gap": None if scratch_best is None else teachers[t]["test_top1"] - scratch_best,
            "methods": methods,
            "fofa_diagnostics": final_diagnostics(group(records, name, "fofa")),
        }
    inv = f"{bench.INVESTIGATION_PAIR[0]} -> {bench.INVESTIGATION_PAIR[1]}"
    variants = {name: aggregate(runs) for name in bench.VARIANTS
                if (runs := group(records, inv, LADDER_LABELS.get(name, name)))}
    labelled = {LADDER_LABELS.get(k, k): v for k, v in variants.items()}
    decisions = {opt: decide({v: labelled[label] for v, label in values.items()})
                 for opt, values in DECISIONS.items() if all(label in labelled for label in values.values())}
    ladder = [variants[n]["val_mean"] for n in bench.LADDER if n in variants]
    return {"teachers": teachers, "pairs": pairs, "investigation_pair": inv, "investigation": variants,
            "investigation_diagnostics": {n: final_diagnostics(group(records, inv, LADDER_LABELS.get(n, n)))
                                          for n in variants},
            "ladder_rises_on_validation": len(ladder) == len(bench.LADDER)
            and all(b > a for a, b in zip(ladder, ladder[1:])),
            "decisions": decisions, "geometry": geometry}


def markdown(results: dict[str, Any]) -> str:
    pairs, teachers, geo = results["pairs"], results["teachers"], results["geometry"]
    lines = ["# Accuracy on heterogeneous pairs (Fashion-MNIST, representative low-data regime)", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Compute: {results['compute_s'] / 3600:.2f} h of training over {results['runs']} student runs, plus "
             f"{sum(t['train_time_s'] for t in teachers.values()) / 3600:.2f} h for the teachers (shipped, so a rerun "
             "skips them). The runs shared the two cores with each other and with other work, so some ran several "
             "times slower than others of the same kind; the fastest run of each kind times its number of runs gives "
             f"{results['uncontended_compute_s'] / 3600:.2f} h, about "
             f"{results['uncontended_compute_s'] / 2 / 3600:.1f} h of wall time as two single-thread processes.  ",
             f"Progress: {results['runs']} of {results['expected_runs']} student runs"
             + (" (complete)." if results["runs"] >= results["expected_runs"] else
                "; **partial results**: the benchmark resumes where it stopped, and cells name their seed count."),
             "", "## The regime, and that it holds", "",
             "| teacher | model | stage grids | test top-1 (%) | SHA-256 |", "|---|---|---|---|---|"]
    for kind, t in teachers.items():
        grids = geo["teachers"][kind]["grids"]
        lines.append(f"| {kind} | {t['model']} {t['kwargs']}, {t['epochs']} epochs on 60k | "
                     f"{' / '.join(f'{g[0]}x{g[1]}' for g in grids)} | {t['test_top1']:.2f} | `{t['sha256'][:12]}` |")
    lines += ["", "| student | model | stage grids |", "|---|---|---|"]
    for kind, s in bench.STUDENTS.items():
        grids = geo["students"][kind]["grids"]
        lines.append(f"| {kind} | {s['model']} {s['kwargs']} | {' / '.join(f'{g[0]}x{g[1]}' for g in grids)} |")
    geometry_ok = all(v["ok"] for v in [*geo["teachers"].values(), *geo["students"].values()])
    lines += ["", f"- Geometry: every teacher stage is at least 2x2 with the first at least 7x7, and every token "
              f"student sees an 8x8 grid: **{'holds' if geometry_ok else 'FAILS'}**.",
              f"- Students: {bench.TRAIN_IMAGES} training images, batch {bench.STUDENT_RECIPE['batch_size']}, "
              f"{bench.EPOCHS} epochs = {bench.EPOCHS * bench.STEPS_PER_EPOCH} AdamW steps per run "
              f"(at least {bench.MIN_STEPS}): **holds**.",
              "- Teacher at least 5 points above the best from-scratch student (best seed) of each pair: " + "; ".join(
                  f"{name} {p['teacher_test_top1']:.2f} vs {p['best_scratch_test_top1']:.2f} "
                  f"(**{p['teacher_gap']:+.2f}**)" if p["teacher_gap"] is not None else f"{name} not measured yet"
                  for name, p in pairs.items()), "",
              "## Every method on every pair", "",
              "Test top-1 (%) on the full 10k test split, mean ± standard deviation over seeds.", "",
              "| method | " + " | ".join(pairs) + " | mean gain over scratch |", "|---" * (len(pairs) + 2) + "|"]
    for method in bench.METHODS:
        gains = [p["methods"][method]["test_mean"] - p["methods"]["scratch"]["test_mean"] for p in pairs.values()
                 if method in p["methods"] and "scratch" in p["methods"]]
        gain = f"{statistics.mean(gains):+.2f}" if gains else "-"
        lines.append(f"| {method} | " + " | ".join(cell(p["methods"].get(method)) for p in pairs.values())
                     + f" | {gain} |")
    lines += ["", "## Where FOFA stands", ""]
    for name, p in pairs.items():
        methods = p["methods"]
        if "fofa" not in methods:
            lines.append(f"- {name}: FOFA not measured yet.")
            continue
        others = {m: r["test_mean"] for m, r in methods.items() if m not in ("fofa", "scratch")}
        best = max(others, key=others.get) if others else None
        fofa = methods["fofa"]["test_mean"]
        parts = [f"{fofa - methods['scratch']['test_mean']:+.2f} against scratch"] if "scratch" in methods else []
        if best:
            parts.append(f"{fofa - others[best]:+.2f} against the best baseline ({best}, {others[best]:.2f})")
        lines.append(f"- {name}: FOFA {fofa:.2f}, " + ", ".join(parts) + ".")
    lines += ["", f"## FOFA investigation on {results['investigation_pair']} (validation decides, test is reported)",
              "", f"To fit the benchmark into about 6 hours on 2 cores, the variants run {results['investigation_seeds']} "
              "seed(s) as a screen; a variant whose validation top-1 beats full FOFA's by more than the noise margin "
              "is then confirmed with every seed (`--confirm NAME`). Confirmed: "
              + (", ".join(results["confirmed"]) or "none") + ".", "", "| variant | val top-1 (%) | test top-1 (%) | train time (s) | extra parameters |",
              "|---|---|---|---|---|"]
    for name, row in results["investigation"].items():
        lines.append(f"| {name} | {cell(row, 'val')} | {cell(row)} | {row['train_time_s']:.0f} | "
                     f"{row['extra_parameters'] / 1e6:.2f} M |")
    ladder_done = all(n in results["investigation"] for n in bench.LADDER)
    lines += ["", "Ladder (" + " -> ".join(bench.LADDER) + ") rises at every step on validation: "
              + (f"**{results['ladder_rises_on_validation']}**." if ladder_done else "not measured yet."), "",
              "What the noise-margin rule picks on validation (another value wins only when its mean validation "
              "top-1 is higher by more than the larger standard deviation over seeds). A pick other than the current "
              "default is a recommendation, not a change: the defaults stay the authors' behaviour, and options "
              "beyond the paper stay opt-in.", ""]
    for option, d in results["decisions"].items():
        confirm = f"; higher on one seed, to confirm: {', '.join(d['to_confirm'])}" if d["to_confirm"] else ""
        current = next(iter(d["val_mean"]))
        pick = d["chosen"] if d["chosen"] == current else f"{d['chosen']} (recommended; default {current})"
        lines.append(f"- `{option}`: **{pick}** (" + ", ".join(
            f"{v} {m:.2f} ± {d['val_std'][v]:.2f} ({d['seeds'][v]} seed{'s' if d['seeds'][v] > 1 else ''})"
            for v, m in d["val_mean"].items()) + f"){confirm}")
    rows = [(name, p["fofa_diagnostics"]) for name, p in pairs.items()]
    rows += [(f"{results['investigation_pair']}, {n}", d) for n, d in results["investigation_diagnostics"].items()
             if n != "full FOFA"]
    lines += ["", "## FOFA's internals (last epoch, mean over seeds)", "", *internals_lines(rows)]
    lines += ["", "### FOFA minus each baseline, seed by seed (matched grids)", "",
              "A seed fixes the student's initialisation and the data order for every method, so each difference is "
              "taken within a seed; the interval is a 95 % t interval over seeds, and the verdict says whether it "
              "excludes zero.", ""]
    lines += paired_lines("pair", results["matched_paired"])
    lines += ["", *paper_like_markdown(results["paper_like"]), "", *entropy_lines(results["raa_entropy_over_training"]),
              "", results["note"], "", "![accuracy](accuracy.png)", ""]
    return "\n".join(lines)


def entropy_lines(series: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The attention-entropy figure, with each series' entropy a quarter of the way through and at the end."""
    lines = ["### FOFA's attention entropy over training (ResNet -> ViT)", "",
             "Entropy of the region-aware attention over its 64 region tokens, in nats (uniform attention: "
             f"ln 64 = {UNIFORM_ENTROPY:.2f}), at the end of an epoch, mean over seeds:", "",
             "| run | seeds | a quarter of the way | at the end |", "|---|---|---|---|"]
    for name, traces in series.items():
        quarter = len(traces[0]["steps"]) // 4
        early = statistics.mean(t["entropy"][quarter] for t in traces)
        end = statistics.mean(t["entropy"][-1] for t in traces)
        lines.append(f"| {name} | {len(traces)} | {early:.2f} (step {traces[0]['steps'][quarter]}) | "
                     f"{end:.2f} (step {traces[0]['steps'][-1]}) |")
    return [*lines, "", "![attention entropy](attention_entropy.png)"]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Each regime is shown on the split its text quotes: test for the matched grids, validation for the paper-like.
    paper_like = results["paper_like"]
    panels = [(f"{name}, matched (test)", "test", p["methods"]) for name, p in results["pairs"].items()
              if p["methods"]]
    panels += [(f"{name}, paper-like (val)", "val", p["methods"]) for name, p in paper_like["pairs"].items()
               if p["methods"]]
    if paper_like["ladder"]["methods"]:
        panels.append((f"FOFA ladder, {paper_like['ladder']['pair']}, paper-like (val)", "val",
                       paper_like["ladder"]["methods"]))
    if results["investigation"]:
        panels.append((f"FOFA investigation, {results['investigation_pair']}, matched (val)", "val",
                       results["investigation"]))
    if not panels:
        return
    columns = 4  # the matched pairs on the first row, the paper-like pairs and their ladder on the second
    grid_rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(4.2 * columns, 4.4 * grid_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, key, rows) in zip(axes.flat, panels):
        names = list(rows)
        ax.bar(range(len(names)), [rows[n][f"{key}_mean"] for n in names],
               yerr=[rows[n][f"{key}_std"] for n in names], capsize=3,
               color=["#d08c60" if n.startswith(("fofa", "full")) else "#7aa6c2" for n in names])
        values = [r[f"{key}_top1"] for n in names for r in rows[n]["runs"]]
        for i, n in enumerate(names):
            ax.scatter([i] * len(rows[n]["runs"]), [r[f"{key}_top1"] for r in rows[n]["runs"]], color="k", s=6,
                       zorder=3)
        ax.set_ylim(min(values) - 2, max(values) + 1.5)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("top-1 (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def uncontended_compute(records: dict[str, dict[str, Any]]) -> float:
    """An estimate of the training time without other work on the cores: the fastest run of each (pair, label)
    times that kind's number of runs (the runs of one kind do the same work; the slower ones shared the cores)."""
    fastest: dict[tuple[str, str], list[float]] = {}
    for r in records.values():
        fastest.setdefault((r["pair"], r["label"]), []).append(r["train_time_s"])
    return sum(min(times) * len(times) for times in fastest.values())


def confirmed_variants(records: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """The variants asked for with `--confirm`, and those already run past the screen's seeds by any process, in
    the investigation's order: a process's report does not forget what another confirmed."""
    pair = " -> ".join(bench.INVESTIGATION_PAIR)
    past_screen = {r["label"] for r in records.values()
                   if r["pair"] == pair and r["seed"] >= args.investigation_seeds}
    return [name for name in bench.VARIANTS
            if name != "full FOFA" and (name in args.confirm or name in past_screen)]


def entropy_series() -> dict[str, list[dict[str, Any]]]:
    """FOFA's attention entropy over training on ResNet -> ViT, in both geometries at both step counts, and at the
    authors' RAA width: whether the attention sharpens given more steps."""
    from geometry_screen import MATCHED_LONG
    from paper_like import PAPER_LIKE
    from regime import load_records

    wanted = [(bench.MATCHED, "fofa", ""), (MATCHED_LONG, "fofa", ""), (PAPER_LIKE, "fofa", ""),
              (PAPER_LIKE.longer(4), "fofa", ""), (PAPER_LIKE, "fofa, width 512", ", RAA width 512")]
    records = {regime.hash(): load_records(regime) for regime, _, _ in wanted}
    series = {}
    for regime, label, suffix in wanted:
        runs = sorted((r for r in records[regime.hash()].values()
                       if r["pair"] == "ResNet -> ViT" and r["label"] == label), key=lambda r: r["seed"])
        if runs:
            series[f"{regime.name.removesuffix(', 4x steps')}, {regime.steps:,} steps{suffix}"] = \
                [entropy_trace(r, regime.steps_per_epoch) for r in runs]
    return series


def write_report(records: dict[str, dict[str, Any]], geometry: dict[str, Any], args: argparse.Namespace) -> None:
    import torch

    results = collect(records, geometry)
    confirmed = confirmed_variants(records, args)
    results.update({
        "command": "python benchmarks/accuracy.py", "note": args.note, "runs": len(records),
        "expected_runs": args.seeds * len(bench.PAIRS) * len(bench.METHODS)
        + (len(bench.VARIANTS) - 1) * args.investigation_seeds
        + len(confirmed) * (args.seeds - args.investigation_seeds),
        "investigation_seeds": args.investigation_seeds, "confirmed": confirmed,
        "compute_s": sum(r["train_time_s"] for r in records.values()),
        "uncontended_compute_s": uncontended_compute(records),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"torch {torch.__version__}, fp32",
        "regime": bench.regime(), "regime_hash": bench.regime_hash(),
        "matched_paired": matched_paired(records, bench.PAIRS, list(bench.METHODS)),
        "paper_like": collect_paper_like(),
        "raa_entropy_over_training": entropy_series(),
    })
    (bench.RESULTS / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    (bench.RESULTS / "accuracy.md").write_text(markdown(results))
    plot(results, bench.RESULTS / "accuracy.png")
    plot_entropy_traces(results["raa_entropy_over_training"], bench.RESULTS / "attention_entropy.png")
    print(f"wrote {bench.RESULTS / 'accuracy.md'}")


def write_all() -> None:
    """The report from every record so far, with `accuracy.py`'s default settings."""
    from matched import MATCHED, geometry
    from regime import load_records

    note_file = Path(__file__).parent / "accuracy_note.md"
    args = argparse.Namespace(seeds=3, investigation_seeds=1, confirm=[],
                              note=note_file.read_text().strip() if note_file.is_file() else "")
    write_report(load_records(MATCHED), geometry(), args)
