"""Hinton knowledge distillation (Hinton et al., 2015)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..options import NON_NEGATIVE, POSITIVE
from .base import LogitDistiller, LossParts
from .losses import kd_loss
from .registry import register_method


@register_method("kd")
class KD(LogitDistiller):
    """`ce_weight * CE + kd_weight * T^2 KL(softmax(z_T / T) || softmax(z_S / T))`.

    Args (the method's own; `Distiller` documents the rest):
        kd_weight: Weight of the KD term.
        temperature: Softmax temperature T.
    """

    option_ranges = {"kd_weight": NON_NEGATIVE, "temperature": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        kd_weight: float = 1.0,
        temperature: float = 1.0,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        self.kd_weight = kd_weight
        self.temperature = temperature

    def logit_losses(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     targets: torch.Tensor) -> LossParts:
        return {"loss_kd": (self.kd_weight, kd_loss(student_logits, teacher_logits, self.temperature))}
