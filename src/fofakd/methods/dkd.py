"""Decoupled knowledge distillation (Zhao et al., CVPR 2022)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..options import NON_NEGATIVE, POSITIVE
from .base import LogitDistiller, LossParts
from .losses import hard_labels
from .registry import register_method


def dkd_parts(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target-class (TCKD) and non-target-class (NCKD) KD terms, each scaled by T^2, batch mean.

    Computed from log-sum-exps, so extreme logits give no NaN: log p_t = z_t - lse(z), log(1 - p_t) =
    lse(z without t) - lse(z); the non-target distribution drops the target column instead of masking it.
    """
    zs, zt = student_logits.float() / temperature, teacher_logits.float() / temperature
    target = F.one_hot(labels, zs.shape[1]).bool()

    def binary_log_probs(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lse_all = z.logsumexp(dim=1)
        log_target = z[target] - lse_all
        log_other = z.masked_fill(target, float("-inf")).logsumexp(dim=1) - lse_all
        return torch.stack([log_target, log_other], dim=1), z[~target].view(z.shape[0], -1)

    binary_s, others_s = binary_log_probs(zs)
    binary_t, others_t = binary_log_probs(zt)
    tckd = F.kl_div(binary_s, binary_t, reduction="batchmean", log_target=True)
    nckd = F.kl_div(F.log_softmax(others_s, dim=1), F.log_softmax(others_t, dim=1), reduction="batchmean",
                    log_target=True)
    return temperature**2 * tckd, temperature**2 * nckd


@register_method("dkd")
class DKD(LogitDistiller):
    """`ce_weight * CE + alpha * TCKD + beta * NCKD`. Soft (mixup) targets use their arg-max class.

    Args (the method's own; `Distiller` documents the rest):
        alpha: Weight of the target-class part.
        beta: Weight of the non-target-class part (the DKD paper uses 8 on ImageNet, OFA's baselines 2).
        temperature: Softmax temperature.
    """

    option_ranges = {"alpha": NON_NEGATIVE, "beta": NON_NEGATIVE, "temperature": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        alpha: float = 1.0,
        beta: float = 2.0,
        temperature: float = 1.0,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        self.alpha, self.beta, self.temperature = alpha, beta, temperature

    def logit_losses(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     targets: torch.Tensor) -> LossParts:
        tckd, nckd = dkd_parts(student_logits, teacher_logits, hard_labels(targets), self.temperature)
        return {"loss_tckd": (self.alpha, tckd), "loss_nckd": (self.beta, nckd)}
