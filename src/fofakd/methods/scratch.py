"""The student trained alone: its own baseline, run through the same loop as every method."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import Distiller, LossParts
from .registry import register_method


@register_method("scratch")
class Scratch(Distiller):
    """Task loss only; the teacher (optional) is never run.

    Args:
        teacher: Ignored apart from being held (may be None).
        student: The student.
        input_size: (C, H, W) of the training inputs.
        ce_weight: Weight of the task loss.
        label_smoothing: Label smoothing of the task loss.
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        student: nn.Module,
        input_size: Sequence[int],
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__(teacher, student, input_size, ce_weight=ce_weight, label_smoothing=label_smoothing)

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        return self.student(images), {}
