"""OFA: One-for-All heterogeneous distillation in logit space (Hao et al., NeurIPS 2023)."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FofakdError
from ..features.stages import stage_positions
from ..modules.projectors import build_exit_branch
from ..options import NON_NEGATIVE, POSITIVE
from .base import Distiller, LossParts
from .losses import hard_labels
from .registry import register_method


OFA_FORMS = ("code", "paper")


def ofa_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, gamma: float = 1.0,
    temperature: float = 1.0, form: str = "code",
) -> torch.Tensor:
    """OFA's loss on one set of student logits, batch mean (docs/methods.md, OFA).

    `form="code"` is what the OFA authors' code computes, `-sum_c [(p_t[c] + m[c])^gamma - m[c]] log p_s[c]` with m
    the one-hot target: the target class weighs `(1 + p_t[y])^gamma - 1` and every other class `p_t[c]^gamma`. At
    gamma = 1 it is soft-target cross-entropy (KD at T = 1 up to the teacher's entropy). `form="paper"` is the
    paper's printed formula, `-(1 + p_t[y])^gamma log p_s[y] - sum_{c != y} p_t[c] log p_s[c]`, which adds one more
    ground-truth cross-entropy per call and leaves the other classes unraised.
    """
    log_ps = F.log_softmax(student_logits.float() / temperature, dim=1)
    pt = F.softmax(teacher_logits.float() / temperature, dim=1)
    onehot = F.one_hot(labels, log_ps.shape[1]).to(pt.dtype)
    if form == "code":
        weight = (pt + onehot) ** gamma - onehot
    elif form == "paper":
        weight = torch.where(onehot.bool(), (1 + pt) ** gamma, pt)
    else:
        raise FofakdError(f"OFA form '{form}' is not known; use one of {', '.join(OFA_FORMS)}.")
    return -(weight * log_ps).sum(dim=1).mean()


@register_method("ofa")
class OFA(Distiller):
    """`ce_weight * CE + final_weight * OFA(z_S) + ofa_weight * sum_i OFA(branch_i(S_i))`.

    Args (the method's own; `Distiller` documents the rest):
        stages: Student stage positions (0-based) that get an exit branch; None = all 4.
        gamma: Target-enhancement exponent: one value, or one per branch (the final logits use the last).
            OFA uses 1 on CIFAR-100 and 1.5 on ImageNet for most pairs.
        temperature: Softmax temperature.
        ofa_weight: Weight of the exit branches' loss (`loss_ofa_branches`).
        final_weight: Weight of OFA's loss on the final logits (`loss_ofa_final`).
        student_stages: Student feature indices overriding the defaults.
        form: "code" (the OFA authors' loss, default) or "paper" (the formula printed in the paper).
        kd_weight: Deprecated name of `final_weight` (kept for one release).
    """

    option_ranges = {"final_weight": NON_NEGATIVE, "ofa_weight": NON_NEGATIVE, "gamma": NON_NEGATIVE,
                     "kd_weight": NON_NEGATIVE, "temperature": POSITIVE}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        stages: Sequence[int] | None = None,
        gamma: float | Sequence[float] = 1.0,
        temperature: float = 1.0,
        ofa_weight: float = 1.0,
        final_weight: float = 1.0,
        student_stages: Sequence[int] | None = None,
        form: str = "code",
        kd_weight: float | None = None,
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        if kd_weight is not None:
            warnings.warn("OFA's option 'kd_weight' is now 'final_weight'; 'kd_weight' will be removed in the next "
                          "release.", DeprecationWarning, stacklevel=2)
            final_weight = kd_weight
        if form not in OFA_FORMS:
            raise FofakdError(f"OFA form '{form}' is not known; use one of {', '.join(OFA_FORMS)}.")
        self.form = form
        self.student_stages = self.source.model_stages("student", student_stages)
        self.positions = stage_positions(stages, len(self.student_stages))
        gammas = [float(gamma)] * len(self.positions) if isinstance(gamma, (int, float)) else [float(g) for g in gamma]
        if len(gammas) != len(self.positions):
            raise FofakdError(
                f"gamma has {len(gammas)} values for {len(self.positions)} exit branches; give one value or one each."
            )
        self.gammas = gammas
        self.temperature, self.ofa_weight, self.final_weight = temperature, ofa_weight, final_weight
        num_classes = self.source.num_classes()
        last_s, last_t = self.student_stages[-1], self.source.model_stages("teacher")[-1]
        width = max(last_s.channels, last_t.channels) if last_s.form == "map" else last_s.channels
        self.branches = nn.ModuleDict({
            str(p): build_exit_branch(self.student_stages[p], last_s, p, len(self.student_stages), width, num_classes)
            for p in self.positions
        })

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        logits, feats = self.source.student_forward(images, targets, self.student_stages)
        teacher_logits = self.teacher_logits(images)
        labels = hard_labels(targets)
        loss_branches = sum(
            ofa_loss(self.branches[str(p)](feats[p]), teacher_logits, labels, g, self.temperature, self.form)
            for p, g in zip(self.positions, self.gammas)
        )
        loss_final = ofa_loss(logits, teacher_logits, labels, self.gammas[-1], self.temperature, self.form)
        return logits, {"loss_ofa_final": (self.final_weight, loss_final),
                        "loss_ofa_branches": (self.ofa_weight, loss_branches)}
