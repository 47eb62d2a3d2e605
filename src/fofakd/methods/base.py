"""The distiller base class: one module owning a frozen teacher, the student and training-only parts."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from ..errors import FofakdError
from ..features.stages import ModelStages
from ..options import FRACTION, NON_NEGATIVE, Range
from .losses import task_loss
from .source import ClassifierSource, FeatureSource, LossParts  # noqa: F401 (LossParts: for methods)


class Distiller(nn.Module):
    """Base for all methods.

    `forward(images, targets)` returns a dict with `loss` (the weighted total to back-propagate), `logits` (the
    student's), the unweighted parts `loss_*` and a method's detached diagnostics `diag/*`. In eval mode only the
    student runs. The teacher is frozen: its parameters never require gradients and it stays in eval mode whatever
    `train()` is called with.

    A method implements `distill(images, targets) -> (student_logits, {name: (weight, loss)})`; the base adds the
    task's own losses and sums the weighted parts. A method reads its models through `self.source` (a
    `FeatureSource`), never directly, so that one method serves every task it lists in `tasks`.

    A method's class starts with its `tasks` (when not only classification), its `option_ranges` and any
    `ddp_find_unused_parameters`, and documents only its own arguments: these below are every method's, passed on
    through `**base_options`.

    Args:
        teacher: The teacher model (timm interface), frozen here; None for methods without one.
        student: The student model (timm interface), trained.
        input_size: (C, H, W) of the training inputs; training-only modules are sized by a dry run at it.
        ce_weight: Weight of the student's task loss.
        label_smoothing: Label smoothing of the task loss for class-index targets.
        source: How the method reads the models (default: `ClassifierSource`, timm classifiers).
    """

    # Whether DistributedDataParallel must look for parameters without a gradient in a step.
    ddp_find_unused_parameters = False
    # The tasks whose feature sources this method can use.
    tasks: tuple[str, ...] = ("classification",)
    method_name = "distiller"  # set by `register_method`
    # The range of each numeric option (a subclass's are added to its bases'); kinds come from the type hints.
    option_ranges: dict[str, Range] = {"ce_weight": NON_NEGATIVE, "label_smoothing": FRACTION}

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
        source: FeatureSource | None = None,
    ):
        super().__init__()
        self.teacher = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.student = student
        self.input_size = tuple(int(v) for v in input_size)
        self.ce_weight = ce_weight
        self.label_smoothing = label_smoothing
        self.source = source if source is not None else ClassifierSource(self.teacher, student, self.input_size)
        if self.source.task not in self.tasks:
            raise FofakdError(f"method '{self.method_name}' cannot be used for {self.source.task}; choose one that "
                              f"`fofakd methods` lists for it.")

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, images: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if not self.training:
            return self.evaluate(images, targets)
        logits, parts = self.distill(images, targets)
        parts = {**self.source.task_losses(logits, targets, self.ce_weight, self.label_smoothing), **parts}
        out = {"logits": logits}
        loss = 0.0
        for name, (weight, value) in parts.items():
            out[name] = value
            loss = loss + weight * value
        out["loss"] = loss
        out.update({f"diag/{k}": v for k, v in self.step_diagnostics().items()})
        return out

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        """Student logits and the method's weighted loss parts for one training batch."""
        raise NotImplementedError

    def step_diagnostics(self) -> dict[str, torch.Tensor]:
        """Detached scalars that describe the last training step (logged per epoch as `diag/<name>`); none here."""
        return {}

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's logits, computed without autograd."""
        return self.source.teacher_logits(images)

    def discover_pair_stages(
        self,
        teacher_stages: Sequence[int] | None = None,
        student_stages: Sequence[int] | None = None,
        teacher_form: str | None = None,
        student_form: str | None = None,
    ) -> tuple[ModelStages, ModelStages]:
        """Teacher and student stages at the training input size; both must have as many stages."""
        return self.source.stages(teacher_stages, student_stages, teacher_form, student_form)

    def task_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return task_loss(logits, targets, self.label_smoothing)

    def evaluate(self, images: torch.Tensor, targets: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The eval-mode output: the student's logits, and its task loss when targets are given."""
        logits = self.student(images)
        out = {"logits": logits}
        if targets is not None:
            out["loss_ce"] = self.task_loss(logits, targets)
            out["loss"] = out["loss_ce"]
        return out

    def named_extra_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Training-only parameters: everything trainable that is not the student's."""
        for name, param in self.named_parameters():
            if param.requires_grad and not name.startswith(("student.", "teacher.")):
                yield name, param

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser trains: the student and the training-only modules (never the teacher)."""
        return [p for p in self.parameters() if p.requires_grad]

    def num_extra_parameters(self) -> int:
        return sum(p.numel() for _, p in self.named_extra_parameters())


class LogitDistiller(Distiller):
    """A method that compares logits only, so it distils whatever logits a task hands it: a classifier's, or a
    detector's ROI-head logits for the proposals the student sampled.

    A subclass implements `logit_losses`; `distill` runs the student and the teacher on the images.
    """

    tasks = ("classification", "detection")

    def logit_losses(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     targets: torch.Tensor) -> LossParts:
        """The method's weighted loss parts from the student's and the teacher's logits of the same samples."""
        raise NotImplementedError

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        logits, _ = self.source.student_forward(images, targets)
        return logits, self.logit_losses(logits, self.teacher_logits(images), self.source.logit_targets(targets))

