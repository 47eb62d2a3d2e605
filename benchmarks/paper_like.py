"""The paper-like regime: the paper's view mismatch (a CNN teacher's grids finer than the token student's) at a
cost this machine allows, and the jobs its screen and its confirmation share.

The matched-grid regime of `matched.py` gives CNN teachers output stride 16 at 32 px, so their first stage is 8x8,
exactly the token students' 8x8 grid. The paper runs every pair at 224 px, where a DeiT-T student sees 14x14
tokens and a CNN teacher's first stage is 56x56. Here the students' grids stay at 8x8 while the CNN teachers' are
finer:

- images upsampled to 64 px (as the paper upsamples CIFAR to 224); token students take 8-px patches (8x8 tokens);
- CNN teachers at their ordinary output stride 32: stages 16x16, 8x8, 4x4, 2x2, twice as fine per side as the
  students' first grid; the ViT teacher takes 8-px patches (8x8) and its CNN student's first stage is 16x16;
- teachers are fine-tuned at 64 px from the matched regime's shipped teachers (as the paper fine-tunes pretrained
  teachers on upsampled CIFAR), on the full 60k split, and shipped under benchmarks/teachers/upsampled64/.
"""
from __future__ import annotations

from pathlib import Path

import matched
from regime import RESULTS, Regime

HERE = Path(__file__).parent
IMG_SIZE = 64
RECORDS = RESULTS / "screen_runs.jsonl"  # the screen's and the confirmation's runs: one record per run
PAPER_LIKE = Regime(
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
        "CNN": matched.STUDENTS["CNN"],
        "ViT": {"model": "vit_tiny_patch16_224",
                "kwargs": {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}},
    },
    # Fine-tuning from the 32-px teachers: a lower peak learning rate and no warm-up.
    teacher_recipe={**matched.TEACHER_RECIPE, "img_size": IMG_SIZE, "lr": 5e-4, "warmup_epochs": 0},
    student_recipe={**matched.STUDENT_RECIPE, "img_size": IMG_SIZE},
    train_images=matched.TRAIN_IMAGES,
    min_steps=matched.MIN_STEPS,
    teacher_dir=HERE / "teachers" / "upsampled64",
    records=RECORDS,
    init_dir=matched.TEACHER_DIR,
)
PAIRS = [("ResNet", "ViT"), ("ConvNeXt", "ViT"), ("ViT", "CNN")]
FOFA = matched.FOFA
CLIP = {"clip_grad": 5.0}  # the FOFA authors' ViT/MLP recipe clips every method's gradients at 5
AUTHORS_FITNET = "fitnet + kd (the FOFA authors' FitNet)"
# label: (method, options, recipe override)
BASELINES = {
    "scratch": ("scratch", {}, None), "kd": ("kd", {}, None), "dkd": ("dkd", {}, None), "dist": ("dist", {}, None),
    "fitnet": ("fitnet", {}, None), "ofa": ("ofa", {}, None), "rsd": ("rsd", {}, None),
    AUTHORS_FITNET: ("fitnet", {"kd_weight": 1.0}, None),
}
LADDER = {name: ("fofa", options, None) for name, options in matched.VARIANTS.items() if name in matched.LADDER[:-1]}
