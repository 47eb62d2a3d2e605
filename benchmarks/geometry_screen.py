"""Where FOFA's mechanism acts: the paper's view mismatch and a patient schedule, screened on validation.

Usage: python benchmarks/geometry_screen.py [--threads N] [--worker I/N] [--only-teachers] [--report-only]

The matched-grid regime of `accuracy.py` gives CNN teachers output stride 16 at 32 px, so their first stage is
8x8, exactly the token students' 8x8 grid. The paper runs every pair at 224 px, where a DeiT-T student sees 14x14
tokens and a CNN teacher's first stage is 56x56. The paper-like regime here keeps the students' grids at 8x8 while
the CNN teachers' are finer:

- images upsampled to 64 px (as the paper upsamples CIFAR to 224); token students take 8-px patches (8x8 tokens);
- CNN teachers at their ordinary output stride 32: stages 16x16, 8x8, 4x4, 2x2, twice as fine per side as the
  students' first grid; the ViT teacher takes 8-px patches (8x8) and its CNN student's first stage is 16x16;
- teachers are fine-tuned at 64 px from the matched regime's shipped teachers (as the paper fine-tunes pretrained
  teachers on upsampled CIFAR), on the full 60k split, and shipped under benchmarks/teachers/upsampled64/.

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
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import matched as bench
from regime import (RESULTS, Regime, claim, distil, ensure_teacher, geometry, load_records, record_key, release,
                    teacher_index)

HERE = Path(__file__).parent
RECORDS = RESULTS / "screen_runs.jsonl"
IMG_SIZE = 64
UPSAMPLED = Regime(
    name="paper-like geometry",
    img_size=IMG_SIZE,
    teachers={
        "ResNet": {"model": "resnet10t", "epochs": 4, "init": "ResNet",
                   "kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16}},
        "ConvNeXt": {"model": "convnext_atto", "epochs": 3, "init": "ConvNeXt", "kwargs": {}},
        "ViT": {"model": "vit_tiny_patch16_224", "epochs": 3, "init": "ViT",
                "kwargs": {"patch_size": 8, "embed_dim": 128, "depth": 6, "num_heads": 4}},
    },
    students={
        "CNN": bench.STUDENTS["CNN"],
        "ViT": {"model": "vit_tiny_patch16_224",
                "kwargs": {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}},
    },
    # Fine-tuning from the 32-px teachers: a lower peak learning rate and no warm-up.
    teacher_recipe={**bench.TEACHER_RECIPE, "img_size": IMG_SIZE, "lr": 5e-4, "warmup_epochs": 0},
    student_recipe={**bench.STUDENT_RECIPE, "img_size": IMG_SIZE},
    train_images=bench.TRAIN_IMAGES,
    min_steps=bench.MIN_STEPS,
    teacher_dir=HERE / "teachers" / "upsampled64",
    records=RECORDS,
    init_dir=bench.TEACHER_DIR,
)
MATCHED_LONG = replace(bench.MATCHED.longer(4), records=RECORDS)
CORE = ["scratch", "kd", "fitnet", "fofa"]
FOFA = bench.FOFA
CLIP = {"clip_grad": 5.0}
# (label, method, options, recipe override)
EXTRAS = [
    ("fofa, clip 5", "fofa", FOFA, CLIP),
    ("kd, clip 5", "kd", {}, CLIP),
    ("fofa, width 512", "fofa", {**FOFA, "dim": 512}, None),
    *[(name, "fofa", options, None) for name, options in bench.VARIANTS.items() if name in bench.LADDER[:-1]],
    ("rsd", "rsd", {}, None),
    ("fitnet + kd (the FOFA authors' FitNet)", "fitnet", {"kd_weight": 1.0}, None),
]


def jobs() -> list[tuple[Regime, tuple[str, str], str, str, dict, dict | None]]:
    """(regime, pair, label, method, options, recipe) of every screen run, in priority order."""
    core = [(m, m, FOFA if m == "fofa" else {}, None) for m in CORE]
    out = [(UPSAMPLED, pair, *job) for pair in [("ResNet", "ViT"), ("ConvNeXt", "ViT")] for job in core]
    out += [(UPSAMPLED, ("ResNet", "ViT"), *job) for job in EXTRAS]
    out += [(UPSAMPLED, ("ViT", "CNN"), *job) for job in core]
    out += [(regime, ("ResNet", "ViT"), *job) for regime in (UPSAMPLED.longer(4), MATCHED_LONG) for job in core]
    return out


def cells(records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The screen's records grouped as {regime name: {pair: {label: record}}}, today's matched runs included."""
    regimes = {bench.MATCHED.name: bench.MATCHED, MATCHED_LONG.name: MATCHED_LONG, UPSAMPLED.name: UPSAMPLED,
               UPSAMPLED.longer(4).name: UPSAMPLED.longer(4)}
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

    all_records = {r.hash(): load_records(r) for r in (bench.MATCHED, MATCHED_LONG, UPSAMPLED, UPSAMPLED.longer(4))}
    done = {j[0].hash() + j[1][0] + j[1][1] + j[2] for j in jobs()}
    runs = sum(1 for h, recs in all_records.items() for r in recs.values()
               if h + r["pair"].replace(" -> ", "") + r["label"] in done)
    results = {
        "command": "python benchmarks/geometry_screen.py", "runs": runs, "expected_runs": len(jobs()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"torch {torch.__version__}, fp32",
        "geometry": {bench.MATCHED.name: geometry(bench.MATCHED), UPSAMPLED.name: geometry(UPSAMPLED)},
        "teachers": {bench.MATCHED.name: teacher_index(bench.MATCHED), UPSAMPLED.name: teacher_index(UPSAMPLED)},
        "regimes": {r.name: {"hash": r.hash(), "steps": r.steps, "settings": r.settings()}
                    for r in (bench.MATCHED, MATCHED_LONG, UPSAMPLED, UPSAMPLED.longer(4))},
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
    work, start = Path(args.work), time.perf_counter()
    index, count = (int(v) for v in args.worker.split("/"))
    if args.only_teachers:
        for kind in UPSAMPLED.teachers:
            ensure_teacher(UPSAMPLED, kind, work, retrain=False)
        return
    pending = [] if args.report_only else jobs()[index::count]
    while pending:  # several workers share the list through claims; a job another worker holds is retried later
        progressed = False
        for job in list(pending):
            regime, pair, label, method, options, recipe = job
            name = f"{regime.hash()}|{record_key(pair, label, 0)}"
            if record_key(pair, label, 0) in load_records(regime):
                pending.remove(job)
                continue
            teacher = f"teacher|{regime.hash()}|{pair[0]}"
            if not claim(work, teacher):
                continue  # another worker is training this teacher
            try:
                ensure_teacher(regime, pair[0], work, retrain=False)  # trained and shipped at first use
            finally:
                release(work, teacher)
            if not claim(work, name):
                continue
            try:
                record = distil(regime, pair, method, options, 0, label, work, load_records(regime), recipe)
            finally:
                release(work, name)
            pending.remove(job)
            progressed = True
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] {regime.name}: {pair[0]} -> {pair[1]} {label}: "
                  f"val {record['val_top1']:.2f} test {record['test_top1']:.2f}", flush=True)
            write_report(note)
        if pending and not progressed:
            time.sleep(60)
    write_report(note)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
