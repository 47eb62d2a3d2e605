"""Relational knowledge distillation: distance and angle relations of embeddings (Park et al., CVPR 2019)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..options import NON_NEGATIVE
from .base import Distiller, LossParts
from .registry import register_method


def _normalised_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    squared = e.pow(2).sum(dim=1)
    product = e @ e.t()
    dist = (squared.unsqueeze(0) + squared.unsqueeze(1) - 2 * product).clamp(min=eps).sqrt()
    dist = dist * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))
    positive = dist[dist > 0]
    return dist / positive.mean().clamp(min=eps) if positive.numel() else dist


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 between the mean-normalised pairwise distance matrices."""
    with torch.no_grad():
        target = _normalised_distances(teacher.float())
    return F.smooth_l1_loss(_normalised_distances(student.float()), target)


def _angles(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 between the cosines of all triplet angles."""
    with torch.no_grad():
        target = _angles(teacher.float())
    return F.smooth_l1_loss(_angles(student.float()), target)


@register_method("rkd")
class RKD(Distiller):
    """`ce_weight * CE + distance_weight * RKD-D + angle_weight * RKD-A` on the pooled pre-logits embeddings
    (their widths may differ: only relations inside each batch are compared).

    Args (the method's own; `Distiller` documents the rest):
        distance_weight: Weight of the distance relation.
        angle_weight: Weight of the angle relation.
    """

    option_ranges = {"angle_weight": NON_NEGATIVE, "distance_weight": NON_NEGATIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        logits, embedding = self.source.student_embedding(images)
        with torch.no_grad():
            _, teacher_embedding = self.source.teacher_embedding(images)
        return logits, {
            "loss_rkd_distance": (self.distance_weight, rkd_distance(embedding, teacher_embedding)),
            "loss_rkd_angle": (self.angle_weight, rkd_angle(embedding, teacher_embedding)),
        }
