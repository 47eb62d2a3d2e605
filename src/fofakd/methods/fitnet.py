"""FitNet for heterogeneous pairs (Romero et al., 2015; the OFA paper's heterogeneous set-up)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..features.layout import to_map
from ..features.stages import stage_positions
from ..modules.projectors import FeatureProjector
from ..options import NON_NEGATIVE, POSITIVE
from .base import Distiller, LossParts
from .losses import kd_loss
from .registry import register_method


@register_method("fitnet")
class FitNet(Distiller):
    """`ce_weight * CE + fd_weight * sum_i MSE(P_i(S_i), T_i) [+ kd_weight * KD]` over chosen stages.

    Each projector maps a student stage (map or tokens, laid out as a map) onto the teacher feature's grid and
    channels; token features are compared as maps on their grid, which is the same MSE. On a detector the stages
    are the FPN levels, at each batch's own size.

    Args (the method's own; `Distiller` documents the rest):
        stages: Stage positions (0-based, of the 4) to distil; None = all.
        fd_weight: Weight of the feature loss.
        kd_weight: Weight of a Hinton KD term on the logits; 0 (the default) leaves it out, as OFA's FitNet does.
            The FOFA authors' FitNet baseline adds it with weight 1.
        temperature: Softmax temperature of that KD term.
        teacher_stages: Teacher feature indices overriding the defaults.
        student_stages: Student feature indices overriding the defaults.
    """

    tasks = ("classification", "detection")
    option_ranges = {"fd_weight": NON_NEGATIVE, "kd_weight": NON_NEGATIVE, "temperature": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        stages: Sequence[int] | None = None,
        fd_weight: float = 1.0,
        kd_weight: float = 0.0,
        temperature: float = 1.0,
        teacher_stages: Sequence[int] | None = None,
        student_stages: Sequence[int] | None = None,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        self.fd_weight, self.kd_weight, self.temperature = fd_weight, kd_weight, temperature
        self.teacher_stages, self.student_stages = self.discover_pair_stages(teacher_stages, student_stages)
        self.positions = stage_positions(stages, len(self.student_stages))
        self.projectors = nn.ModuleDict({
            str(p): FeatureProjector(self.student_stages[p].channels, self.teacher_stages[p].channels,
                                     self.teacher_stages[p].grid)
            for p in self.positions
        })

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        logits, student_feats = self.source.student_forward(images, targets, self.student_stages)
        with torch.no_grad():
            teacher_logits, teacher_feats = self.source.teacher_forward(images, self.teacher_stages)
        loss = 0.0
        for p in self.positions:
            target = to_map(teacher_feats[p], self.teacher_stages[p].grid).float()
            student = to_map(student_feats[p], self.student_stages[p].grid)
            loss = loss + F.mse_loss(self.projectors[str(p)](student, target.shape[-2:]).float(), target)
        parts = {"loss_fd": (self.fd_weight, loss)}
        if self.kd_weight:
            parts["loss_kd"] = (self.kd_weight, kd_loss(logits, teacher_logits, self.temperature))
        return logits, parts
