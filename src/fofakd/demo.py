"""`fofakd demo`: the accuracy benchmark's regime in small: a strong CNN teacher distilled into a small ViT on
Fashion-MNIST at 32 px with scratch, KD, FitNet and FOFA."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .classification.config import build_config
from .classification.training import run
from .reports.attention import draw_attention
from .reports.report import markdown_table, write_report

IMG_SIZE = 32
# The benchmark's ResNet teacher: a half-width ResNet-10 with output stride 16, so its stage maps at 32 px are
# 8x8, 4x4, 2x2 and 2x2 rather than shrinking to 1x1 (benchmarks/accuracy.py explains the regime).
TEACHER = {"teacher": "resnet10t",
           "teacher_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16, "output_stride": 16}}
# Its weights as the benchmark ships them (93 % test top-1 after 20 epochs on the 60k training images).
SHIPPED_TEACHERS = Path(__file__).resolve().parents[2] / "benchmarks" / "teachers"
# A 4-block ViT of width 96 with 4x4 patches: an 8x8 token grid at 32 px, one input channel.
STUDENT = {"student": "vit_tiny_patch16_224",
           "student_kwargs": {"patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3}}
# FitNet because the benchmark recommends it for a CNN teacher and a ViT student, so the table shows FOFA beside the
# method to beat; OFA (1.6x a KD step in the speed benchmark) is in the benchmark and in `fofakd compare`.
METHODS = {
    "scratch": {},
    "kd": {},
    "fitnet": {},
    "fofa": {"dim": 128},  # RAA width scaled to the small student (the paper's 512 suits 224 px)
}
# `--quick` (what the tests run) leaves KD out: scratch is the reference, FitNet the method to beat, FOFA the method.
QUICK_METHODS = ("scratch", "fitnet", "fofa")
SIZES = {
    # (training images, validation images, test images, student epochs, epochs of a teacher trained here)
    "default": (5000, 2000, 10000, 13, 20),  # the benchmark's ResNet -> ViT runs, seed 0: 1,027 steps
    "quick": (3000, 500, 2000, 8, 3),        # 376 steps: enough for a ViT to learn (about 60 %), not to rank methods
}
# fp32: on CPUs without native bf16 (this project's machines) bf16 autocast measured 10-30x slower. Evaluation in
# batches of 128: on one CPU core a tiny ViT evaluated 1.4x faster than in batches of 500 (cache-sized activations).
RECIPE = {"img_size": IMG_SIZE, "val_fraction": 0.1, "batch_size": 64, "opt": "adamw", "lr": 1e-3, "weight_decay": 0.05,
          "warmup_epochs": 1, "seed": 0, "smoothing": 0.1, "eval_batch_size": 128}

# What fofakd's accuracy benchmark found (benchmarks/results/accuracy.md); the README says the same.
FINDINGS = (
    "What the benchmark found (Fashion-MNIST, 1,027 steps, 3 seeds, test top-1, paired by seed): FitNet is the "
    "method to reach for when a CNN teaches a ViT (75.3 and 75.5 against 73.0 and 72.7 from scratch), DIST when a "
    "CNN teaches an MLP (82.7 against 79.4), OFA or DKD when a ViT teaches a CNN (84.3 and 84.2 against 83.3). FOFA "
    "with the authors' settings leads no pair. With the teacher's features twice as fine as the student's tokens, "
    "as in the paper, and with four times the steps, FitNet still leads on ResNet -> ViT (87.55 against FOFA's "
    "83.65 and scratch's 80.85; one seed, validation); at the usual steps FitNet leads FOFA by 1.8 to 3.0 "
    "points on both CNN -> ViT pairs, on every seed, even with FOFA's recipe tuned on validation (RSD is close "
    "to FitNet), and only when a ViT teaches a CNN do the feature-matching methods fall below scratch, where FOFA "
    "is level with KD, DIST and OFA. Which method wins depends on your pair and budget: measure it with "
    "`fofakd compare`."
)


def shipped_teacher() -> tuple[Path, float] | None:
    """The benchmark's shipped teacher weights and their test top-1, when this is a source checkout."""
    index = SHIPPED_TEACHERS / "teachers.json"
    weights = SHIPPED_TEACHERS / "ResNet.safetensors"
    if not (index.is_file() and weights.is_file()):
        return None
    entry = json.loads(index.read_text()).get("ResNet", {})
    if entry.get("kwargs") != TEACHER["teacher_kwargs"]:
        return None
    return weights, float(entry["test_top1"])


def _teacher(size: str, out: Path) -> tuple[Path, float]:
    """The shipped teacher, else one trained here on the full training split once (a later demo reuses it)."""
    shipped = shipped_teacher()
    if shipped is not None:
        print(f"teacher: the shipped {TEACHER['teacher']} ({shipped[1]:.2f} % test top-1), {shipped[0]}")
        return shipped
    folder = out / f"teacher-{size}"
    if (folder / "summary.json").is_file() and (folder / "student.safetensors").is_file():
        print(f"teacher: reusing {folder}")
    else:
        epochs = SIZES[size][4]
        print(f"teacher: no shipped weights here; training {TEACHER['teacher']} on the 60k training images for "
              f"{epochs} epochs (once)")
        run(build_config({**RECIPE, "model": TEACHER["teacher"], "model_kwargs": TEACHER["teacher_kwargs"],
                          "val_fraction": 0.0, "batch_size": 128, "lr": 2e-3, "epochs": epochs,
                          "out": str(folder), "overwrite": True}), "train")
    return folder, json.loads((folder / "summary.json").read_text())["test_top1"]


def run_demo(out: str | Path = "demo", quick: bool = False) -> dict[str, Any]:
    """Run the demo into `out` and write report.md, results.json and plots there."""
    size = "quick" if quick else "default"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher, teacher_top1 = _teacher(size, out)
    train, val, test, epochs, _ = SIZES[size]
    runs = []
    methods = {m: options for m, options in METHODS.items() if not quick or m in QUICK_METHODS}
    for method, method_options in methods.items():
        folder = out / size / method
        print(f"{method}: distilling into {STUDENT['student']} (patch 4, {IMG_SIZE} px)")
        options = {**RECIPE, **TEACHER, **STUDENT, "train_subset": train, "val_subset": val, "test_subset": test,
                   "method": method, "method_options": method_options, "teacher_checkpoint": str(teacher),
                   "epochs": epochs, "out": str(folder), "overwrite": True}
        run(build_config(options), "distill")
        runs.append(folder)
    steps = epochs * -(-train // RECIPE["batch_size"])
    notes = (f"Fashion-MNIST at {IMG_SIZE} px: {train} training images ({steps} optimiser steps), {val} validation "
             f"images held out of the training split, {test} test images. Teacher {TEACHER['teacher']} "
             f"{TEACHER['teacher_kwargs']}: {teacher_top1:.2f} % test top-1. Student {STUDENT['student']} "
             f"{STUDENT['student_kwargs']}, one seed; benchmarks/results/accuracy.md has every method over 3 seeds "
             f"and 4 pairs. Total time {time.perf_counter() - start:.0f} s.")
    results = write_report(runs, out, title=f"fofakd demo ({size}): a ResNet teacher into a small ViT",
                           notes=notes)
    draw_attention(out / size / "fofa", out / "attention.png")
    with open(out / "report.md", "a") as f:
        f.write("\nWhere the FOFA student's region-aware attention looks (`fofakd attention`):\n\n"
                "![attention](attention.png)\n")
    print(markdown_table(results["table"]))
    print(f"report: {out / 'report.md'}")
    print(FINDINGS)
    return results
