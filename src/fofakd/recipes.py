"""The paper's experiment set-up (docs/recipes.md) as recipe configs, and the commands that run them.

The tables here are the single source of the YAML files under `configs/`: `fofakd recipes --write configs`
regenerates them and a test checks that the shipped files match.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import FofakdError
from .files import write_text

# Short name -> (timm name of the ImageNet-1K weights, family). Students are trained from scratch.
MODELS = {
    "resnet18": ("resnet18", "cnn"),
    "mobilenetv2": ("mobilenetv2_100", "cnn"),
    "resnet50": ("resnet50.a1_in1k", "cnn"),
    "convnext_t": ("convnext_tiny.fb_in1k", "cnn"),
    "deit_t": ("deit_tiny_patch16_224.fb_in1k", "vit"),
    "vit_s": ("vit_small_patch16_224.augreg_in21k_ft_in1k", "vit"),
    "swin_t": ("swin_tiny_patch4_window7_224.ms_in1k", "vit"),
    "swin_n": ("swin_nano_patch4_window7_224", "vit"),
    "swin_p": ("swin_pico_patch4_window7_224", "vit"),
    "mixer_b16": ("mixer_b16_224.goog_in21k_ft_in1k", "mlp"),
    "resmlp_s12": ("resmlp_12_224", "mlp"),
}

# (teacher, student) pairs of the paper.
PAIRS = {
    "cifar100": [(t, s) for s in ("resnet18", "mobilenetv2") for t in ("swin_t", "vit_s", "mixer_b16")]
    + [(t, s) for s in ("deit_t", "swin_p") for t in ("convnext_t", "mixer_b16")]
    + [("convnext_t", "resmlp_s12"), ("swin_t", "resmlp_s12")],
    "imagenet": [(t, s) for s in ("resnet18", "mobilenetv2") for t in ("deit_t", "swin_t", "mixer_b16")]
    + [(t, s) for s in ("deit_t", "swin_n") for t in ("resnet50", "convnext_t", "mixer_b16")]
    + [(t, "resmlp_s12") for t in ("resnet50", "convnext_t", "swin_t")],
}

# Method options at the paper's settings; written out in full so a change of fofakd's defaults never changes a
# shipped recipe.
METHOD_OPTIONS = {
    "scratch": {},
    "kd": {"kd_weight": 1.0, "temperature": 1.0},
    "fitnet": {"fd_weight": 1.0},
    "ofa": {"gamma": 1.0, "temperature": 1.0, "ofa_weight": 1.0, "final_weight": 1.0},
    "rsd": {"rsd_weight": 0.1, "kappa": 0.01, "gamma": 2},
    "fofa": {"num_queries": 64, "dim": 512, "heads": 8, "preset": "fofakd", "se_mode": "bias", "kd_weight": 1.0,
             "fd_weight": 1.0, "reg_weight": 1.0, "temperature": 1.0},
}

_VIT_AUG = {"smoothing": 0.1, "rrc_scale": 0.08, "hflip": 0.5, "randaugment": 9, "mixup": 0.8, "cutmix": 1.0,
            "reprob": 0.25, "clip_grad": 5.0}
# Per-GPU batch; `gpus` is the number of GPUs the paper's learning rate was set for.
RECIPES = {
    ("cifar100", "cnn"): {"gpus": 1, "epochs": 300, "batch_size": 128, "opt": "sgd", "momentum": 0.9, "lr": 0.05,
                          "min_lr": 1e-3, "weight_decay": 2e-3, "sched": "cosine", "warmup_epochs": 3,
                          "smoothing": 0.1, "rrc_scale": 0.08, "hflip": 0.5, "crop_padding": 0},
    ("cifar100", "vit"): {"gpus": 1, "epochs": 300, "batch_size": 128, "opt": "adamw", "lr": 5e-4, "min_lr": 1e-5,
                          "weight_decay": 0.05, "sched": "cosine", "warmup_epochs": 20, "crop_padding": 0,
                          **_VIT_AUG},
    ("imagenet", "cnn"): {"gpus": 4, "epochs": 100, "batch_size": 64, "opt": "sgd", "momentum": 0.9, "lr": 0.1,
                          "min_lr": 1e-6, "weight_decay": 1e-4, "sched": "step", "decay_epochs": 30,
                          "decay_rate": 0.1, "warmup_epochs": 3, "smoothing": 0.1, "hflip": 0.5},
    ("imagenet", "vit"): {"gpus": 4, "epochs": 300, "batch_size": 128, "opt": "adamw", "lr": 5e-4, "min_lr": 1e-6,
                          "weight_decay": 0.05, "sched": "cosine", "warmup_epochs": 20, **_VIT_AUG},
}
# Fine-tuning an ImageNet-pretrained teacher on CIFAR-100 (fofakd's choice: the paper gives no teacher recipe).
TEACHER_RECIPE = {"gpus": 1, "epochs": 50, "batch_size": 128, "opt": "adamw", "lr": 1e-4, "min_lr": 1e-6,
                  "weight_decay": 0.05, "sched": "cosine", "warmup_epochs": 3, "crop_padding": 0, **_VIT_AUG}
# The reference runs use mixed precision and a student EMA throughout (docs/recipes.md).
COMMON = {"img_size": 224, "amp": "bf16", "ema": True, "seed": 42}
DATA = {
    "cifar100": {"data": "cifar100", "val_fraction": 0.0},
    "imagenet": {"data": "imagefolder", "data_dir": "data/imagenet", "workers": 10},
}


@dataclass
class Recipe:
    """One shipped config: where it lives, what it runs, and the GPUs its learning rate assumes."""

    path: str
    command: str
    config: dict[str, Any]
    gpus: int
    header: str


def recipe_family(family: str) -> str:
    return "cnn" if family == "cnn" else "vit"


def teacher_recipe(teacher: str) -> Recipe:
    name = MODELS[teacher][0]
    recipe = dict(TEACHER_RECIPE)
    gpus = recipe.pop("gpus")
    config = {"model": name, "pretrained": True, "reset_head": True, **DATA["cifar100"], **COMMON, **recipe,
              "out": f"runs/cifar100/teachers/{teacher}"}
    header = (f"Teacher {teacher} ({name}): ImageNet-pretrained timm weights fine-tuned on CIFAR-100 at 224 px.\n"
              "Needs network for the weights; offline, fine-tune elsewhere and pass the file as --teacher-checkpoint.")
    return Recipe(f"cifar100/teachers/{teacher}.yaml", "train", config, gpus, header)


def distill_recipe(dataset: str, teacher: str, student: str, method: str) -> Recipe:
    teacher_name, student_name = MODELS[teacher][0], MODELS[student][0].split(".")[0]
    family = recipe_family(MODELS[student][1])
    recipe = dict(RECIPES[(dataset, family)])
    gpus = recipe.pop("gpus")
    if dataset == "cifar100":
        weights = {"teacher_checkpoint": f"runs/cifar100/teachers/{teacher}"}
        source = f"the fine-tuned teacher from configs/cifar100/teachers/{teacher}.yaml (or your own file)"
    else:
        weights = {"pretrained": True, "teacher_checkpoint": None}
        source = "timm's ImageNet weights (downloaded), or set teacher_checkpoint to a local file and pretrained: false"
    config = {**DATA[dataset], **COMMON, "teacher": teacher_name, **weights, "student": student_name,
              "method": method, "method_options": dict(METHOD_OPTIONS[method]), **recipe,
              "out": f"runs/{dataset}/{teacher}-{student}/{method}"}
    kind = "CNN" if family == "cnn" else "ViT/MLP"
    header = (f"{dataset}: {teacher} -> {student} with {method}; the paper's {kind}-student recipe "
              f"(docs/recipes.md).\nTeacher weights: {source}.")
    return Recipe(f"{dataset}/{teacher}-{student}/{method}.yaml", "distill", config, gpus, header)


def all_recipes() -> list[Recipe]:
    """Every shipped recipe: CIFAR-100 teacher fine-tuning, then each pair x method of both data sets."""
    teachers = sorted({t for t, _ in PAIRS["cifar100"]})
    recipes = [teacher_recipe(t) for t in teachers]
    for dataset, pairs in PAIRS.items():
        recipes += [distill_recipe(dataset, t, s, m) for t, s in pairs for m in METHOD_OPTIONS]
    return recipes


def render(recipe: Recipe) -> str:
    """The YAML text of a recipe, with its header and run commands as comments."""
    lines = [f"# {line}" for line in recipe.header.splitlines()]
    lines += [f"# {line}" for line in commands(recipe, f"configs/{recipe.path}")]
    return "\n".join(lines) + "\n" + yaml.safe_dump(recipe.config, sort_keys=False, default_flow_style=False)


def commands(recipe: Recipe, path: str) -> list[str]:
    """The exact commands for one GPU and for torchrun, keeping the paper's global batch and learning rate."""
    batch, lr = recipe.config["batch_size"], recipe.config["lr"]
    base = f"{recipe.command} --config {path}"
    if recipe.gpus == 1:
        per_gpu = max(1, batch // 4)
        return [f"1 GPU:  fofakd {base}",
                f"4 GPUs: torchrun --nproc_per_node 4 -m fofakd.cli {base} --batch-size {per_gpu}"]
    return [f"1 GPU:  fofakd {base} --lr {lr / recipe.gpus:g}",
            f"{recipe.gpus} GPUs: torchrun --nproc_per_node {recipe.gpus} -m fofakd.cli {base}"]


def default_dir() -> Path:
    """The `configs/` folder of the source tree fofakd runs from."""
    return Path(__file__).resolve().parents[2] / "configs"


def write_recipes(folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Write every recipe under `folder`; returns the paths written.

    Args:
        overwrite: Replace recipe files that differ from fofakd's (a user's edits); without it they are refused.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FofakdError(f"--write '{folder}' is a file; give a folder to write the recipes under.")
    contents = {folder / recipe.path: render(recipe) for recipe in all_recipes()}
    edited = [p for p, text in contents.items() if p.exists() and (not p.is_file() or p.read_text() != text)]
    if edited and not overwrite:
        raise FofakdError(f"{len(edited)} recipe file(s) under '{folder}' differ from fofakd's (e.g. '{edited[0]}'); "
                          "pass --overwrite to replace them, or --write another folder.")
    return [write_text(path, text) for path, text in contents.items()]


def list_recipes(folder: str | Path | None = None, match: str | None = None) -> list[tuple[Recipe, Path]]:
    """The shipped recipes whose path contains `match`, each with its file (which must exist)."""
    folder = Path(folder) if folder is not None else default_dir()
    if not folder.is_dir():
        raise FofakdError(f"no recipe folder at '{folder}'; recipes ship with the source tree (git clone the project) "
                          "or pass --dir to a folder written by `fofakd recipes --write DIR`.")
    chosen = [r for r in all_recipes() if match is None or match in r.path]
    if not chosen:
        raise FofakdError(f"no recipe matches '{match}'; run `fofakd recipes` to list them.")
    return [(r, folder / r.path) for r in chosen]
