"""The student trained alone: its own baseline, run through the same loop as every method."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .base import Distiller, LossParts
from .registry import register_method


@register_method("scratch")
class Scratch(Distiller):
    """Task loss only; the teacher (optional) is never run. Its arguments are `Distiller`'s."""

    tasks = ("classification", "detection")

    def __init__(
        self,
        teacher: nn.Module | None,
        student: nn.Module,
        input_size: Sequence[int],
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        return self.source.student_forward(images, targets)[0], {}
