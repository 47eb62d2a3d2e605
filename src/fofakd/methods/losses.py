"""Loss functions shared by the distillation methods."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..features.layout import to_map


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices from index targets or from soft (mixup) targets."""
    return targets.argmax(dim=-1) if targets.ndim == 2 else targets


def task_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy with class-index targets (optionally label-smoothed) or soft targets (B, K) from mixup."""
    logits = logits.float()
    if targets.ndim == 2:
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def kl_divergence(target_logits: torch.Tensor, logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(target_logits / T) || softmax(logits / T)), batch mean, computed in float32 from log-softmax."""
    log_p = F.log_softmax(target_logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(logits.float() / temperature, dim=-1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton KD: T^2 * KL(softmax(z_T / T) || softmax(z_S / T))."""
    return temperature**2 * kl_divergence(teacher_logits, student_logits, temperature)


def hcl_loss(
    aligned: torch.Tensor, target: torch.Tensor, grid: tuple[int, int], pool_sizes: Sequence[int] = (4, 2, 1)
) -> torch.Tensor:
    """ReviewKD's hierarchical context loss between two features of the same shape (maps, or tokens on `grid`).

    MSE at full resolution (weight 1), then at each pooled size k < H with halving weights, normalised by the
    weight sum.
    """
    a, t = to_map(aligned, grid).float(), to_map(target, grid).float()
    loss = F.mse_loss(a, t)
    weight, total = 1.0, 1.0
    height = a.shape[2]
    for k in pool_sizes:
        if k >= height:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(a, k), F.adaptive_avg_pool2d(t, k))
        total += weight
    return loss / total
