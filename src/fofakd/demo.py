"""`fofakd demo`: a CNN teacher distilled into a small ViT on Fashion-MNIST with scratch, KD, OFA and FOFA."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .engine.config import build_config
from .engine.trainer import run
from .reports.attention import draw_attention
from .reports.report import markdown_table, write_report

TEACHER = {"model": "resnet10t"}
# A 4-block ViT of width 96 with 4x4 patches: 49 tokens on a 28 px image, one input channel.
STUDENT = {"student": "vit_tiny_patch16_224",
           "student_kwargs": {"patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3}}
METHODS = {
    "scratch": {},
    "kd": {},
    "ofa": {},
    "fofa": {"dim": 128},  # RAA width scaled to the small student (the paper's 512 suits 224 px)
}
SIZES = {
    # (training images, validation images, test images, teacher epochs, student epochs)
    "default": (5000, 1000, 10000, 5, 5),
    "quick": (1200, 400, 2000, 3, 3),
}
# fp32: on CPUs without native bf16 (this project's machines) bf16 autocast measured 10-30x slower.
RECIPE = {"batch_size": 64, "opt": "adamw", "lr": 2e-3, "weight_decay": 0.05, "seed": 0, "smoothing": 0.1}


def _options(size: str, out: Path) -> dict[str, Any]:
    train, val, test, _, _ = SIZES[size]
    return {**RECIPE, "train_subset": train, "val_subset": val, "test_subset": test}


def _teacher(size: str, out: Path) -> Path:
    """Train the teacher once; a later demo with the same settings reuses it."""
    folder = out / f"teacher-{size}"
    options = {**_options(size, out), **TEACHER, "epochs": SIZES[size][3], "out": str(folder)}
    if (folder / "summary.json").is_file() and (folder / "student.safetensors").is_file():
        print(f"teacher: reusing {folder}")
        return folder
    print(f"teacher: training {TEACHER['model']} for {options['epochs']} epochs")
    run(build_config({**options, "overwrite": True}), "train")
    return folder


def run_demo(out: str | Path = "demo", quick: bool = False) -> dict[str, Any]:
    """Run the demo into `out` and write report.md, results.json and plots there."""
    size = "quick" if quick else "default"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher = _teacher(size, out)
    runs = []
    for method, method_options in METHODS.items():
        folder = out / size / method
        print(f"{method}: distilling into {STUDENT['student']} (patch 4, 28 px)")
        options = {**_options(size, out), **STUDENT, "method": method, "method_options": method_options,
                   "teacher_checkpoint": str(teacher), "epochs": SIZES[size][4], "out": str(folder),
                   "overwrite": True}
        run(build_config(options), "distill")
        runs.append(folder)
    teacher_top1 = json.loads((teacher / "summary.json").read_text())["test_top1"]
    train, val, test, t_epochs, s_epochs = SIZES[size]
    notes = (f"Fashion-MNIST: {train} training images, {val} validation images held out of the training split, "
             f"{test} test images; "
             f"teacher {TEACHER['model']} ({t_epochs} epochs): {teacher_top1:.2f} % test top-1; student "
             f"{STUDENT['student']} with {STUDENT['student_kwargs']}, {s_epochs} epochs, one seed. "
             f"Total time {time.perf_counter() - start:.0f} s.")
    results = write_report(runs, out, title=f"fofakd demo ({size})", notes=notes)
    draw_attention(out / size / "fofa", out / "attention.png")
    with open(out / "report.md", "a") as f:
        f.write("\nWhere the FOFA student's region-aware attention looks (`fofakd attention`):\n\n"
                "![attention](attention.png)\n")
    print(markdown_table(results["table"]))
    print(f"report: {out / 'report.md'}")
    return results
