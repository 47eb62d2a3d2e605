"""The matched-grid regime of the accuracy benchmark: its teachers, students, pairs, recipes and FOFA variants.

Fashion-MNIST at 32 px; each condition is checked and reported:
- Teachers train on the full 60k training split and are shipped as safetensors under benchmarks/teachers/ with
  the command that made them, their test top-1 and a SHA-256.
- Students see 5k training images (a low-data subset) for at least 1,000 optimiser steps; validation is 2k images
  carved from the training split with the seed; test is the full 10k test split.
- No degenerate geometry: every teacher stage map is at least 2x2 and the first at least 7x7 (CNN teachers use
  output stride 16), and every token student sees an 8x8 grid (4-px patches).

`accuracy.py` runs it, `accuracy_report.py` reports it, and `geometry_screen.py` builds the paper-like regime
beside it; all three import the definitions from here.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from regime import RESULTS, Regime
from regime import geometry as regime_geometry

HERE = Path(__file__).parent
TEACHER_DIR = HERE / "teachers"
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


MATCHED = Regime(name="matched grids", img_size=IMG_SIZE, teachers=TEACHERS, students=STUDENTS,
                 teacher_recipe=TEACHER_RECIPE, student_recipe=STUDENT_RECIPE, train_images=TRAIN_IMAGES,
                 min_steps=MIN_STEPS, teacher_dir=TEACHER_DIR, records=RECORDS)


def regime() -> dict[str, Any]:
    """Everything that changes a run's result; its hash keys the records, so a changed regime reruns."""
    return MATCHED.settings()


def regime_hash() -> str:
    return MATCHED.hash()


def geometry() -> dict[str, Any]:
    """Every stage grid of every teacher and student at the benchmark's input size, and whether the regime holds."""
    return regime_geometry(MATCHED)
