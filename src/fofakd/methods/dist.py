"""DIST: knowledge distillation from a stronger teacher by correlation (Huang et al., NeurIPS 2022)."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import nn

from ..options import NON_NEGATIVE, POSITIVE
from .base import LogitDistiller, LossParts
from .registry import register_method


def pearson(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of `a` and `b` along `dim`."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


def dist_parts(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inter-class (per sample, across classes) and intra-class (per class, across the batch) relation losses."""
    ps = (student_logits.float() / tau).softmax(dim=1)
    pt = (teacher_logits.float() / tau).softmax(dim=1)
    inter = tau**2 * (1 - pearson(ps, pt, dim=1)).mean()
    intra = tau**2 * (1 - pearson(ps, pt, dim=0)).mean()
    return inter, intra


@register_method("dist")
class DIST(LogitDistiller):
    """`ce_weight * CE + beta * inter + gamma * intra`.

    Args (the method's own; `Distiller` documents the rest):
        beta: Weight of the inter-class relation.
        gamma: Weight of the intra-class relation.
        temperature: Softmax temperature.
        tau: Deprecated name of `temperature` (kept for one release).
    """

    option_ranges = {"beta": NON_NEGATIVE, "gamma": NON_NEGATIVE, "temperature": POSITIVE, "tau": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        tau: float | None = None,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        if tau is not None:
            warnings.warn("DIST's option 'tau' is now 'temperature'; 'tau' will be removed in the next release.",
                          DeprecationWarning, stacklevel=2)
            temperature = tau
        self.beta, self.gamma, self.temperature = beta, gamma, temperature

    def logit_losses(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     targets: torch.Tensor) -> LossParts:
        inter, intra = dist_parts(student_logits, teacher_logits, self.temperature)
        return {"loss_inter": (self.beta, inter), "loss_intra": (self.gamma, intra)}
