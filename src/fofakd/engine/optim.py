"""A run's optimiser and learning-rate schedule from its config (every task's)."""
from __future__ import annotations

from typing import Any

import torch
from timm.optim import create_optimizer_v2, get_optimizer_info
from timm.scheduler import create_scheduler_v2
from torch import nn

from .config import TrainingConfig


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
