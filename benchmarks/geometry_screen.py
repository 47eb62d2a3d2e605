"""Where FOFA's mechanism acts: the paper's view mismatch and a patient schedule, screened on validation.

Usage: python benchmarks/geometry_screen.py [--threads N] [--worker I/N] [--only-teachers] [--report-only]

The paper-like regime is defined in `paper_like.py`.

The screen is one seed, decided on validation. Its cells, in the order they run:
1. ResNet -> ViT and ConvNeXt -> ViT, paper-like geometry, today's steps: scratch, kd, fitnet, fofa;
2. in the paper-like geometry on ResNet -> ViT: FOFA and KD with the authors' clipping at 5, FOFA at the authors'
   RAA width 512, the ladder (features only, + RAA, + AFP without feedback, full FOFA), RSD, and FitNet with the
   FOFA authors' KD term;
3. ViT -> CNN, paper-like geometry, today's steps: scratch, kd, fitnet, fofa;
4. ResNet -> ViT with 4x the steps, paper-like geometry first, then the matched one: scratch, kd, fitnet, fofa
   (today's records serve the matched geometry at today's steps).

Runs are recorded in benchmarks/results/screen_runs.jsonl (keyed by the regime's hash) and resume like the
accuracy benchmark's. Several processes started alike share the job list: each job (and each teacher to train) is
claimed in the work folder while it runs, and a worker retries the jobs others hold until all are recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import matched as bench
from paper_like import AUTHORS_FITNET, BASELINES, CLIP, FOFA, LADDER, PAPER_LIKE, RECORDS
from regime import RESULTS, Job, ensure_teacher, geometry, load_records, run_shared, teacher_index

HERE = Path(__file__).parent
MATCHED_LONG = replace(bench.MATCHED.longer(4), records=RECORDS)
CORE = ["scratch", "kd", "fitnet", "fofa"]
# (label, method, options, recipe override)
EXTRAS = [
    ("fofa, clip 5", "fofa", FOFA, CLIP),
    ("kd, clip 5", "kd", {}, CLIP),
    ("fofa, width 512", "fofa", {**FOFA, "dim": 512}, None),
    *[(name, *job) for name, job in LADDER.items()],
    ("rsd", *BASELINES["rsd"]),
    (AUTHORS_FITNET, *BASELINES[AUTHORS_FITNET]),
]


def jobs() -> list[Job]:
    """Every screen run (seed 0), in priority order."""
    core = [(m, m, FOFA if m == "fofa" else {}, None) for m in CORE]
    out = [(PAPER_LIKE, pair, *job) for pair in [("ResNet", "ViT"), ("ConvNeXt", "ViT")] for job in core]
    out += [(PAPER_LIKE, ("ResNet", "ViT"), *job) for job in EXTRAS]
    out += [(PAPER_LIKE, ("ViT", "CNN"), *job) for job in core]
    out += [(regime, ("ResNet", "ViT"), *job) for regime in (PAPER_LIKE.longer(4), MATCHED_LONG) for job in core]
    return [Job(*job) for job in out]


def cells(records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The screen's records grouped as {regime name: {pair: {label: record}}}, today's matched runs included."""
    regimes = {bench.MATCHED.name: bench.MATCHED, MATCHED_LONG.name: MATCHED_LONG, PAPER_LIKE.name: PAPER_LIKE,
               PAPER_LIKE.longer(4).name: PAPER_LIKE.longer(4)}
    out: dict[str, Any] = {}
    for name, regime in regimes.items():
        for r in records[regime.hash()].values():
            if r["seed"] == 0 and (regime is not bench.MATCHED or r["pair"] == "ResNet -> ViT"):
                out.setdefault(name, {}).setdefault(r["pair"], {})[r["label"]] = r
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Where FOFA's mechanism acts: geometry and schedule screen (one seed, validation decides)", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Progress: {results['runs']} of {results['expected_runs']} screen runs"
             + (" (complete)." if results["runs"] >= results["expected_runs"] else
                "; **partial**: the screen resumes where it stopped."), "", "## Geometry", "",
             "| regime | model | role | stage grids |", "|---|---|---|---|"]
    for regime, geo in results["geometry"].items():
        for role in ("teachers", "students"):
            for kind, g in geo[role].items():
                lines.append(f"| {regime} | {kind} | {role[:-1]} | "
                             f"{' / '.join(f'{a}x{b}' for a, b in g['grids'])} |")
    lines += ["", "| regime | teacher | test top-1 (%) | how it was made |", "|---|---|---|---|"]
    for regime, teachers in results["teachers"].items():
        for kind, t in teachers.items():
            lines.append(f"| {regime} | {kind} | {t['test_top1']:.2f} | `{t['command']}` |")
    lines += ["", "## Validation top-1 (%) of each run (test top-1 in brackets; one seed, seed 0)", ""]
    for regime, pairs in results["cells"].items():
        for pair, runs in pairs.items():
            steps = next(iter(runs.values()))["steps"]
            lines += [f"### {pair}, {regime} ({steps} steps)", "", "| run | val | test | - FitNet (val) | train time (s) |",
                      "|---|---|---|---|---|"]
            fitnet = runs.get("fitnet", {}).get("val_top1")
            for label, r in runs.items():
                gap = f"{r['val_top1'] - fitnet:+.2f}" if fitnet is not None else "-"
                lines.append(f"| {label} | {r['val_top1']:.2f} | {r['test_top1']:.2f} | {gap} | "
                             f"{r['train_time_s']:.0f} |")
            lines.append("")
    lines += [results["note"], ""]
    return "\n".join(lines)


def write_report(note: str) -> None:
    import torch

    all_records = {r.hash(): load_records(r) for r in (bench.MATCHED, MATCHED_LONG, PAPER_LIKE, PAPER_LIKE.longer(4))}
    screen = {(job.regime.hash(), job.key) for job in jobs()}
    runs = sum(1 for h, recs in all_records.items() for key in recs if (h, key) in screen)
    results = {
        "command": "python benchmarks/geometry_screen.py", "runs": runs, "expected_runs": len(jobs()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"torch {torch.__version__}, fp32",
        "geometry": {bench.MATCHED.name: geometry(bench.MATCHED), PAPER_LIKE.name: geometry(PAPER_LIKE)},
        "teachers": {bench.MATCHED.name: teacher_index(bench.MATCHED), PAPER_LIKE.name: teacher_index(PAPER_LIKE)},
        "regimes": {r.name: {"hash": r.hash(), "steps": r.steps, "settings": r.settings()}
                    for r in (bench.MATCHED, MATCHED_LONG, PAPER_LIKE, PAPER_LIKE.longer(4))},
        "cells": cells(all_records), "note": note,
    }
    (RESULTS / "screen.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "screen.md").write_text(markdown(results))
    print(f"wrote {RESULTS / 'screen.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--worker", default="0/1", help="I/N: run every N-th job starting at the I-th (workers started "
                        "on the whole list share it through claims instead)")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "fofakd" / "accuracy"),
                        help="where run directories go (a cut-short run resumes from its checkpoint there)")
    parser.add_argument("--only-teachers", action="store_true", help="make sure the teachers exist, then stop")
    parser.add_argument("--report-only", action="store_true", help="write the report from the records so far")
    args = parser.parse_args()
    note_file = HERE / "screen_note.md"
    note = note_file.read_text().strip() if note_file.is_file() else ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    work, (index, count) = Path(args.work), (int(v) for v in args.worker.split("/"))
    if args.only_teachers:
        for kind in PAPER_LIKE.teachers:
            ensure_teacher(PAPER_LIKE, kind, work, retrain=False)
        return
    if not args.report_only:
        run_shared(lambda: jobs()[index::count], work, lambda: write_report(note))
    write_report(note)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
