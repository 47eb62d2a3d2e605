"""Contrastive representation distillation (Tian et al., ICLR 2020) with a bounded queue of negatives."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..options import NON_NEGATIVE, POSITIVE
from .base import Distiller, LossParts
from .registry import register_method


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of picking each anchor's positive among the positive and the negatives (all unit vectors)."""
    pos = (anchor * positive).sum(dim=1, keepdim=True)
    neg = anchor @ negatives.t()
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))


@register_method("crd")
class CRD(Distiller):
    """Both embeddings are projected to `feat_dim` and normalised; each student embedding must pick its own
    teacher embedding among `num_negatives` earlier teacher embeddings, and the other way round.

    The original keeps one memory slot per training image; here a first-in-first-out queue of fixed size holds the
    negatives (as in MoCo), so memory does not grow with the data set. The queues are buffers: they are saved
    with the distiller's state.

    Args (the method's own; `Distiller` documents the rest):
        feat_dim: Width of the contrastive embedding.
        num_negatives: Queue length (negatives per anchor).
        temperature: Contrast temperature.
        crd_weight: Weight of the contrastive loss.
    """

    option_ranges = {"crd_weight": NON_NEGATIVE, "feat_dim": POSITIVE, "num_negatives": POSITIVE, "temperature": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        feat_dim: int = 128,
        num_negatives: int = 16384,
        temperature: float = 0.07,
        crd_weight: float = 0.8,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        self.temperature, self.crd_weight = temperature, crd_weight
        teacher_dim, student_dim = self.source.embedding_dims()
        self.embed_student = nn.Linear(student_dim, feat_dim)
        self.embed_teacher = nn.Linear(teacher_dim, feat_dim)
        self.register_buffer("queue_student", F.normalize(torch.randn(num_negatives, feat_dim), dim=1))
        self.register_buffer("queue_teacher", F.normalize(torch.randn(num_negatives, feat_dim), dim=1))
        self.register_buffer("queue_position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _enqueue(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        size = self.queue_student.shape[0]
        student, teacher = student[-size:], teacher[-size:]
        index = (self.queue_position + torch.arange(len(student), device=student.device)) % size
        # Out of place: this step's loss still refers to the old queues.
        self.queue_student = self.queue_student.index_copy(0, index, student.float())
        self.queue_teacher = self.queue_teacher.index_copy(0, index, teacher.float())
        self.queue_position = (self.queue_position + len(student)) % size

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        logits, embedding = self.source.student_embedding(images)
        with torch.no_grad():
            _, teacher_embedding = self.source.teacher_embedding(images)
        zs = F.normalize(self.embed_student(embedding).float(), dim=1)
        zt = F.normalize(self.embed_teacher(teacher_embedding).float(), dim=1)
        loss = info_nce(zs, zt, self.queue_teacher, self.temperature) + info_nce(
            zt, zs, self.queue_student, self.temperature
        )
        self._enqueue(zs.detach(), zt.detach())
        return logits, {"loss_crd": (self.crd_weight, loss)}
