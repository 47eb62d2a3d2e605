"""Accuracy of every method on heterogeneous pairs in a representative low-data regime, and FOFA's investigation.

Usage: python benchmarks/accuracy.py [--seeds 3] [--investigation-seeds 1] [--confirm VARIANTS] [--threads N]
       [--pairs ResNet-ViT,...] [--retrain-teachers] [--only-teachers] [--report-only]

The regime (Fashion-MNIST at 32 px; each condition is checked and reported):
- Teachers train on the full 60k training split and are shipped as safetensors under benchmarks/teachers/ with
  the command that made them, their test top-1 and a SHA-256; a rerun uses them unless --retrain-teachers.
- Students see 5k training images (a low-data subset) for at least 1,000 optimiser steps; validation is 2k images
  carved from the training split with the seed; test is the full 10k test split.
- No degenerate geometry: every teacher stage map is at least 2x2 and the first at least 7x7 (CNN teachers use
  output stride 16), and every token student sees an 8x8 grid (4-px patches).

Every finished run is appended to benchmarks/results/accuracy_runs.jsonl (keyed by the regime's settings), so an
interrupted benchmark resumes where it stopped, on this machine or a fresh clone; a run cut short mid-way resumes
from its own checkpoint when its work folder is still there. The report is written from the records.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TEACHER_DIR = HERE / "teachers"
RESULTS = HERE / "results"
RECORDS = RESULTS / "accuracy_runs.jsonl"

IMG_SIZE = 32
TEACHERS = {
    "ResNet": {"model": "resnet10t", "epochs": 20,
               "kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16, "output_stride": 16}},
    "ConvNeXt": {"model": "convnext_atto", "epochs": 12, "kwargs": {"output_stride": 16}},
    "ViT": {"model": "vit_tiny_patch16_224", "epochs": 15,
            "kwargs": {"patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4}},
}
STUDENTS = {
    "CNN": {"model": "resnet10t", "kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8}},
    "ViT": {"model": "vit_tiny_patch16_224", "kwargs": {"patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3}},
    "MLP": {"model": "mixer_s4_32", "kwargs": {"patch_size": 4, "embed_dim": 128, "num_blocks": 4}},
}
PAIRS = [("ResNet", "ViT"), ("ResNet", "MLP"), ("ViT", "CNN"), ("ConvNeXt", "ViT")]
TEACHER_RECIPE = {"data": "fashion-mnist", "img_size": IMG_SIZE, "val_fraction": 0.0, "batch_size": 128,
                  "opt": "adamw", "lr": 2e-3, "weight_decay": 0.05, "warmup_epochs": 1, "smoothing": 0.1,
                  "eval_batch_size": 500, "seed": 0}
TRAIN_IMAGES, MIN_STEPS = 5000, 1000
STUDENT_RECIPE = {"data": "fashion-mnist", "img_size": IMG_SIZE, "val_fraction": 0.1, "val_subset": 2000,
                  "train_subset": TRAIN_IMAGES, "batch_size": 64, "opt": "adamw", "lr": 1e-3, "weight_decay": 0.05,
                  "warmup_epochs": 1, "smoothing": 0.1, "eval_batch_size": 500}
STEPS_PER_EPOCH = math.ceil(TRAIN_IMAGES / STUDENT_RECIPE["batch_size"])
EPOCHS = math.ceil(MIN_STEPS / STEPS_PER_EPOCH)
FOFA = {"dim": 128}  # RAA width scaled to the small students (the paper's 512 suits 224 px)
METHODS = {"scratch": {}, "kd": {}, "dkd": {}, "dist": {}, "fitnet": {}, "ofa": {}, "fofa": FOFA}
INVESTIGATION_PAIR = ("ResNet", "ViT")
LADDER = ["features only", "+ RAA", "+ AFP without feedback", "full FOFA"]
VARIANTS = {
    "features only": {**FOFA, "use_raa": False, "afp_stages": []},
    "+ RAA": {**FOFA, "afp_stages": []},
    "+ AFP without feedback": {**FOFA, "use_feedback": False},
    "full FOFA": FOFA,
    "fd_weight=0.3": {**FOFA, "fd_weight": 0.3},
    "fd_weight=0.1": {**FOFA, "fd_weight": 0.1},
    "fd warm-up (first 30% of steps)": {**FOFA, "fd_warmup_steps": round(0.3 * EPOCHS * STEPS_PER_EPOCH)},
    "init=reference": {**FOFA, "init": "reference"},
    "pos_embed=reference": {**FOFA, "pos_embed": "reference"},
    "se_mode=gate": {**FOFA, "se_mode": "gate"},
    "target_norm=layer": {**FOFA, "target_norm": "layer"},
    # Beyond the paper: one region per student token (8x8 per stage) instead of 4x4 regions, so that the 8x8
    # teacher map of stage 1 is not regressed from a 4x4 summary.
    "num_queries=256": {**FOFA, "num_queries": 256},
    # The two changes that helped most on the screen, together.
    "target_norm=layer + fd_weight=0.3": {**FOFA, "target_norm": "layer", "fd_weight": 0.3},
}


def regime() -> dict[str, Any]:
    """Everything that changes a run's result; its hash keys the records, so a changed regime reruns."""
    return {"teachers": TEACHERS, "teacher_recipe": TEACHER_RECIPE, "students": STUDENTS,
            "student_recipe": STUDENT_RECIPE, "epochs": EPOCHS}


def regime_hash() -> str:
    return hashlib.sha1(json.dumps(regime(), sort_keys=True).encode()).hexdigest()[:10]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def teacher_command(kind: str, out: str) -> str:
    spec, r = TEACHERS[kind], TEACHER_RECIPE
    kwargs = " ".join(f"{k}={json.dumps(v).replace(' ', '')}" for k, v in spec["kwargs"].items())
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r.items())
    return f"fofakd train --model {spec['model']} --model-kwargs {kwargs} --epochs {spec['epochs']} {flags} --out {out}"


def ensure_teacher(kind: str, work: Path, retrain: bool) -> Path:
    """The shipped weights of teacher `kind`, trained (and shipped) first when missing or when asked."""
    from fofakd.engine.config import build_config
    from fofakd.engine.classification import run

    index_path = TEACHER_DIR / "teachers.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    weights = TEACHER_DIR / f"{kind}.safetensors"
    entry = index.get(kind)
    fresh = entry and weights.is_file() and entry["model"] == TEACHERS[kind]["model"] \
        and entry["kwargs"] == TEACHERS[kind]["kwargs"] and entry["epochs"] == TEACHERS[kind]["epochs"]
    if fresh and not retrain:
        if sha256(weights) != entry["sha256"]:
            sys.exit(f"{weights} does not match the SHA-256 in {index_path}; restore it or pass --retrain-teachers.")
        return weights
    folder = work / "teachers" / kind
    spec = TEACHERS[kind]
    resume = (folder / "checkpoints" / "last.pt").is_file() and not retrain  # a teacher cut short continues
    run(build_config({**TEACHER_RECIPE, "model": spec["model"], "model_kwargs": spec["kwargs"],
                      "epochs": spec["epochs"], "out": str(folder), "resume": resume, "overwrite": not resume}),
        "train")
    return ship_teacher(kind, folder)


def ship_teacher(kind: str, folder: Path) -> Path:
    """Copy a finished teacher run's weights to benchmarks/teachers/ and record how they were made."""
    spec, summary = TEACHERS[kind], json.loads((folder / "summary.json").read_text())
    index_path = TEACHER_DIR / "teachers.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    weights = TEACHER_DIR / f"{kind}.safetensors"
    TEACHER_DIR.mkdir(exist_ok=True)
    shutil.copyfile(folder / "student.safetensors", weights)
    index[kind] = {**{k: spec[k] for k in ("model", "kwargs", "epochs")}, "recipe": TEACHER_RECIPE,
                   "command": teacher_command(kind, f"runs/teachers/{kind}"), "test_top1": summary["test_top1"],
                   "train_time_s": summary["train_time_s"], "sha256": sha256(weights)}
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return weights


def geometry() -> dict[str, Any]:
    """Every stage grid of every teacher and student at the benchmark's input size, and whether the regime holds."""
    import fofakd
    from fofakd.features.stages import discover_stages

    def grids(spec: dict[str, Any]) -> tuple[list[list[int]], str]:
        model = fofakd.create_model(spec["model"], num_classes=10, in_chans=1, img_size=IMG_SIZE, **spec["kwargs"])
        stages = discover_stages(model, (1, IMG_SIZE, IMG_SIZE))
        return [list(s.grid) for s in stages], stages[0].form

    out: dict[str, Any] = {"teachers": {}, "students": {}}
    for kind, spec in TEACHERS.items():
        g, form = grids(spec)
        out["teachers"][kind] = {"grids": g, "form": form,
                                 "ok": min(min(x) for x in g) >= 2 and min(g[0]) >= 7}
    for kind, spec in STUDENTS.items():
        g, form = grids(spec)
        out["students"][kind] = {"grids": g, "form": form, "ok": form != "tokens" or min(min(x) for x in g) >= 7}
    return out


def load_records() -> dict[str, dict[str, Any]]:
    if not RECORDS.is_file():
        return {}
    rows = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in rows if r["regime"] == regime_hash()}


def distil(pair: tuple[str, str], method: str, options: dict, seed: int, label: str, work: Path,
           records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One distillation run (or its record, when it already finished)."""
    key = f"{pair[0]}->{pair[1]}|{label}|seed{seed}"
    if key in records:
        return records[key]
    from fofakd.engine.config import build_config
    from fofakd.engine.classification import run

    folder = work / regime_hash() / f"{pair[0]}-{pair[1]}" / "".join(c if c.isalnum() else "_" for c in label) \
        / f"seed{seed}"
    teacher, student = TEACHERS[pair[0]], STUDENTS[pair[1]]
    resume = (folder / "checkpoints" / "last.pt").is_file()
    summary = run(build_config({
        **STUDENT_RECIPE, "student": student["model"], "student_kwargs": student["kwargs"],
        "teacher": teacher["model"], "teacher_kwargs": teacher["kwargs"],
        "teacher_checkpoint": str(TEACHER_DIR / f"{pair[0]}.safetensors"), "method": method,
        "method_options": options, "seed": seed, "epochs": EPOCHS, "out": str(folder),
        # The runs of this regime began before fofakd fused its optimisers; they keep the for-loop, so that one
        # table holds one implementation (outside the regime hash, which would discard every record).
        "fused_optimizer": False, "resume": resume, "overwrite": not resume}), "distill")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    record = {"key": key, "regime": regime_hash(), "pair": f"{pair[0]} -> {pair[1]}", "label": label,
              "method": method, "options": options, "seed": seed, "test_top1": summary["test_top1"],
              "val_top1": rows[-1]["val_top1"], "train_time_s": summary["train_time_s"],
              "steps": EPOCHS * STEPS_PER_EPOCH, "extra_parameters": summary["extra_parameters"],
              "diagnostics": [{k: v for k, v in r.items() if k.startswith(("diag/", "loss")) or k == "epoch"}
                              for r in rows] if method == "fofa" else []}
    with open(RECORDS, "a") as f:
        f.write(json.dumps(record) + "\n")
    records[key] = record
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--investigation-seeds", type=int, default=1,
                        help="seeds for the investigation's variants (a screen; a variant that beats full FOFA on "
                             "validation by more than the noise margin is then confirmed with --seeds)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "fofakd" / "accuracy"),
                        help="where run directories go (a cut-short run resumes from its checkpoint there)")
    parser.add_argument("--retrain-teachers", action="store_true", help="train the teachers again and ship them")
    parser.add_argument("--only-teachers", action="store_true", help="make sure the teachers exist, then stop")
    parser.add_argument("--report-only", action="store_true", help="write the report from the records so far")
    parser.add_argument("--pairs", help="only these pairs, e.g. ResNet-ViT,ResNet-MLP (default: all)")
    parser.add_argument("--confirm", type=lambda s: s.split(","), default=[],
                        help="investigation variants to run with every seed, e.g. 'fd_weight=0.3'")
    parser.add_argument("--only", type=lambda s: s.split(","), default=[],
                        help="run only these labels (methods or variants), e.g. to share the work between processes")
    parser.add_argument("--note", default=None,
                        help="text for the report's closing section (default: benchmarks/accuracy_note.md)")
    args = parser.parse_args()
    if args.note is None:
        note_file = HERE / "accuracy_note.md"
        args.note = note_file.read_text().strip() if note_file.is_file() else ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from accuracy_report import write_report

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pairs = [p for p in PAIRS if not args.pairs or f"{p[0]}-{p[1]}" in args.pairs.split(",")]
    for kind in dict.fromkeys(t for t, _ in pairs):
        if not args.report_only:
            ensure_teacher(kind, work, args.retrain_teachers)
    if args.only_teachers:
        return
    records = load_records()
    start = time.perf_counter()
    for seed in range(args.seeds if not args.report_only else 0):
        jobs = [(pair, method, options, method) for pair in pairs for method, options in METHODS.items()]
        jobs += [(INVESTIGATION_PAIR, "fofa", options, name) for name, options in VARIANTS.items()
                 if name != "full FOFA" and INVESTIGATION_PAIR in pairs
                 and (seed < args.investigation_seeds or name in args.confirm)]
        for pair, method, options, label in jobs:
            if args.only and label not in args.only:
                continue
            record = distil(pair, method, options, seed, label, work, records)
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] {pair[0]} -> {pair[1]} {label} seed {seed}: "
                  f"test {record['test_top1']:.2f} val {record['val_top1']:.2f}", flush=True)
    write_report(records, geometry(), args)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
