"""A run's parts from its config: models that follow the data (classes, channels, size), optimiser, schedule."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from timm.optim import create_optimizer_v2, get_optimizer_info
from timm.scheduler import create_scheduler_v2
from torch import nn

from ..data.bundle import DataBundle
from ..errors import FofakdError
from ..models import create_model
from ..models.factory import check_input_size
from ..models.sources import resolve_source
from ..models.spec_file import checkpoint_spec
from .config import RunConfig, TrainingConfig, check_models


def student_spec(name: str, kwargs: dict[str, Any], data: DataBundle, cfg: RunConfig) -> dict[str, Any]:
    """Everything needed to rebuild the student, feed it and name its outputs (saved with its weights). A
    `local-dir:` or `hf-hub:` name is recorded as the architecture and arguments it resolved to, so that the run's
    student rebuilds without the folder or the network."""
    source = resolve_source(name)
    if source is not None:
        name, kwargs = source[0], {**source[1], **kwargs}
    spec = {
        "task": "classification", "model": name, "num_classes": data.num_classes, "in_chans": data.in_chans,
        "img_size": data.img_size,
        "kwargs": dict(kwargs), "mean": list(data.mean), "std": list(data.std), "data": cfg.data,
        "class_names": list(data.class_names),
    }
    if cfg.data == "imagefolder" or (cfg.data.startswith("hfds/") and cfg.data_dir):
        spec["data_dir"] = str(Path(cfg.data_dir).resolve())  # so that `fofakd eval` finds the data without it
    return spec


def model_from_spec(spec: dict[str, Any], checkpoint: str | Path | None = None) -> nn.Module:
    return create_model(spec["model"], num_classes=spec["num_classes"], in_chans=spec["in_chans"],
                        img_size=spec["img_size"], checkpoint=checkpoint, **spec.get("kwargs", {}))


def build_run_models(cfg: RunConfig, command: str, data: DataBundle) -> tuple[nn.Module | None, nn.Module, dict]:
    """(teacher or None, student, student spec) for `fofakd train` or `fofakd distill`."""
    common = dict(num_classes=data.num_classes, in_chans=data.in_chans, img_size=data.img_size,
                  pretrained=cfg.pretrained, reset_head=cfg.reset_head)
    for flag, kwargs in (("model", cfg.model_kwargs), ("teacher", cfg.teacher_kwargs), ("student", cfg.student_kwargs)):
        taken = sorted(set(kwargs) & {*common, "checkpoint"})
        if taken:
            raise FofakdError(
                f"--{flag}-kwargs cannot set {', '.join(taken)}: fofakd sets it from the data ({data.num_classes} "
                f"classes, {data.in_chans} channels, {data.img_size} px) or from its own flag; leave it out."
            )
    check_models(cfg, command)
    size = (data.in_chans, data.img_size, data.img_size)
    if command == "train":
        model = create_model(cfg.model, checkpoint=cfg.checkpoint, **common, **cfg.model_kwargs)
        check_input_size(model, size, "model")
        return None, model, student_spec(cfg.model, cfg.model_kwargs, data, cfg)
    teacher_name, teacher_kwargs = cfg.teacher, dict(cfg.teacher_kwargs)
    source = Path(cfg.teacher_checkpoint) if cfg.teacher_checkpoint else None
    trained = checkpoint_spec(source) if source is not None else None
    if trained is not None and teacher_name in (None, trained["model"]):
        teacher_name = trained["model"]
        teacher_kwargs = {**trained.get("kwargs", {}), **teacher_kwargs}
    teacher = create_model(teacher_name, checkpoint=source, **{**common, "reset_head": False}, **teacher_kwargs)
    student = create_model(cfg.student, **{**common, "pretrained": False}, **cfg.student_kwargs)
    check_input_size(teacher, size, "teacher")
    check_input_size(student, size, "student")
    return teacher, student, student_spec(cfg.student, cfg.student_kwargs, data, cfg)


# torch optimisers with a fused kernel: one pass over all weights instead of several operations per tensor. On a
# 2-core CPU a fused AdamW step measured 3.4x faster than the for-loop (docs/speed.md); rounding differs slightly.
# Not SGD: torch's fused SGD fails once a parameter gets its first gradient after the first step (FOFA's fusion
# blocks do: there is no feedback on step one), since its momentum buffers are created on the first step only.
FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


def build_optimizer(cfg: TrainingConfig, model: nn.Module) -> torch.optim.Optimizer:
    """timm's optimiser over the trainable parameters (no weight decay on norms and biases), fused where it can be."""
    fused = {"fused": True} if cfg.fused_optimizer and has_fused_kernel(cfg.opt, model) else {}
    return create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                               **fused)


def has_fused_kernel(opt: str, model: nn.Module) -> bool:
    """Whether timm's optimiser `opt` is a torch optimiser with a fused kernel on the devices of `model`'s weights."""
    try:  # torch >= 2.1; the CPU joined the list in 2.4
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        opt_class = get_optimizer_info(opt).opt_class
    except (ImportError, ValueError):  # an older torch, or a name timm resolves otherwise (e.g. lookahead_adamw)
        return False
    devices = {p.device.type for p in model.parameters() if p.requires_grad}
    return opt_class in FUSED_OPTIMIZERS and devices <= set(_get_fused_kernels_supported_devices())


def build_scheduler(cfg: TrainingConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    """timm's learning-rate schedule, stepped every iteration; None for `sched: none`."""
    if cfg.sched == "none":
        return None
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=cfg.sched, num_epochs=cfg.epochs, decay_epochs=cfg.decay_epochs, decay_rate=cfg.decay_rate,
        min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr, warmup_epochs=cfg.warmup_epochs, step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    return scheduler
