"""Redundancy suppression distillation (Zhang et al., "Cross-Architecture Distillation Made Simple with Redundancy
Suppression", ICCV 2025)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import FofakdError
from ..modules.init import init_weights
from ..options import NON_NEGATIVE, POSITIVE
from .base import Distiller, LossParts
from .registry import register_method


def standardise(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each column to mean 0 and standard deviation 1 over the batch (biased std; `eps` added to it)."""
    return (x - x.mean(dim=0)) / (x.std(dim=0, unbiased=False) + eps)


def rsd_loss(student: torch.Tensor, teacher: torch.Tensor, kappa: float) -> torch.Tensor:
    """`sum_i (C_ii - 1)^2 + kappa * sum_{i != j} C_ij^2` with C = z_t^T z_s / B, the cross-correlation of the
    batch-standardised teacher and (projected) student embeddings, both (B, D)."""
    batch, dim = student.shape
    correlation = standardise(teacher.float()).t() @ standardise(student.float()) / batch
    eye = torch.eye(dim, device=correlation.device, dtype=correlation.dtype)
    squared = (correlation - eye).pow(2)
    # 1 on the diagonal (invariance), kappa off it (decorrelation)
    return torch.where(eye.bool(), squared, kappa * squared).sum()


class RSDProjector(nn.Sequential):
    """The student embedding -> the teacher's width: Linear(d_s, gamma d_s, no bias), BatchNorm1d, GELU,
    Linear(gamma d_s, d_t, no bias); Linear weights trunc-normal(0.02)."""

    def __init__(self, student_dim: int, teacher_dim: int, gamma: int):
        hidden = student_dim * gamma
        super().__init__(nn.Linear(student_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.GELU(),
                         nn.Linear(hidden, teacher_dim, bias=False))
        init_weights(self)


@register_method("rsd")
class RSD(Distiller):
    """`ce_weight * CE + rsd_weight * RSD(P(e_s), e_t)` on the pooled pre-logits embeddings e_s and e_t (the
    authors' stage -1), with a small projector P on the student's side; no KD term.

    Args (the method's own; `Distiller` documents the rest):
        rsd_weight: Weight of the RSD loss.
        kappa: Weight of the off-diagonal (decorrelation) terms against the diagonal (invariance) ones.
        gamma: Width of the projector's hidden layer, in multiples of the student's embedding width.
    """

    option_ranges = {"rsd_weight": NON_NEGATIVE, "kappa": NON_NEGATIVE, "gamma": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        rsd_weight: float = 0.1,
        kappa: float = 0.01,
        gamma: int = 2,
        **base_options: Any,
    ):
        if isinstance(gamma, bool) or not isinstance(gamma, int) or gamma < 1:
            raise FofakdError(f"method 'rsd' option 'gamma' must be a whole number of at least 1, got {gamma!r}; "
                              "fix its value.")
        if kappa < 0:
            raise FofakdError(f"method 'rsd' option 'kappa' must be at least 0, got {kappa!r}; fix its value.")
        super().__init__(teacher, student, input_size, **base_options)
        self.rsd_weight, self.kappa = rsd_weight, kappa
        teacher_dim, student_dim = self.source.embedding_dims()
        self.projector = RSDProjector(student_dim, teacher_dim, gamma)

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        with torch.no_grad():
            _, teacher_embedding = self.source.teacher_embedding(images)
        logits, embedding = self.source.student_embedding(images)
        loss = rsd_loss(self.projector(embedding), teacher_embedding, self.kappa)
        return logits, {"loss_rsd": (self.rsd_weight, loss)}
