"""Feature sources: what a method reads from a task's models, so that one method serves every task.

A method never calls the teacher or the student itself. It asks its source for stage features and their shapes, for
the logits to distil (a classifier's logits; a detector's ROI-head logits for the student's sampled proposals), for
where prompts go in the teacher, and for the task's own losses. `ClassifierSource` reads timm classifiers; a task
with other models (`fofakd.detection`) brings its own subclass.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import FofakdError
from ..features.stages import (ModelStages, TokenDrop, discover_stages, embedding_dim, forward_embedding,
                               forward_stages)
from .losses import task_loss

LossParts = dict[str, tuple[float, torch.Tensor]]


class FeatureSource:
    """The interface a method uses to run a teacher-student pair of one task.

    It holds references to the distiller's teacher and student (it is no module itself, so nothing is registered
    twice). A training step calls `student_forward` first; the teacher calls that follow in the same step see the
    same inputs.

    Attributes:
        task: The task's name; a method lists the tasks it supports in `Distiller.tasks`.
        method_defaults: Per method, defaults that suit this task better than the method's own (e.g. FOFA's region
            tokens over a detector's five FPN levels).
    """

    task = ""
    method_defaults: dict[str, dict[str, Any]] = {}

    def __init__(self, teacher: nn.Module | None, student: nn.Module):
        self.teacher, self.student = teacher, student

    def stages(self, teacher_stages: Sequence[int] | None = None, student_stages: Sequence[int] | None = None,
               teacher_form: str | None = None, student_form: str | None = None) -> tuple[ModelStages, ModelStages]:
        """The teacher's and the student's stage features a feature loss compares (their shapes at a reference
        input), as many for both."""
        raise NotImplementedError

    def model_stages(self, model: str, indices: Sequence[int] | None = None,
                     form: str | None = None) -> ModelStages:
        """The stage features of one model ("teacher" or "student") on its own, for a method that reads the two
        unpaired (OFA's exit branches on the student's stages, sized by the teacher's last)."""
        raise NotImplementedError

    def num_classes(self) -> int:
        """The width of the logits to distil."""
        raise NotImplementedError

    def prompt_sites(self, teacher_stages: ModelStages) -> tuple[nn.Module, ModelStages]:
        """Where prompts go: the module to hook and its stages, one per stage feature (whose shape the feedback
        has) and each with the input a prompt rewrites."""
        raise NotImplementedError

    def student_forward(self, images: Any, targets: Any, stages: ModelStages | None = None,
                        token_drop: TokenDrop = "prefix") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The student's logits to distil and its stage features (none without `stages`), with autograd."""
        raise NotImplementedError

    def teacher_forward(self, images: Any, stages: ModelStages,
                        token_drop: TokenDrop = "prefix") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The teacher's logits for the same samples as the student's, and its stage features."""
        raise NotImplementedError

    def teacher_logits(self, images: Any) -> torch.Tensor:
        """The teacher's logits for the same samples as the student's."""
        raise NotImplementedError

    def embedding_dims(self) -> tuple[int, int]:
        """Widths of the teacher's and the student's pooled pre-logits embeddings."""
        raise NotImplementedError

    def student_embedding(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's logits and its pooled pre-logits embedding, in one pass, with autograd."""
        raise NotImplementedError

    def teacher_embedding(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits and its pooled pre-logits embedding (the caller decides on autograd)."""
        raise NotImplementedError

    def logit_targets(self, targets: Any) -> torch.Tensor:
        """The labels of the logits' rows."""
        raise NotImplementedError

    def task_losses(self, logits: torch.Tensor, targets: Any, ce_weight: float, label_smoothing: float) -> LossParts:
        """The task's own weighted losses for this step."""
        raise NotImplementedError


class ClassifierSource(FeatureSource):
    """Timm classifiers on image batches: stages found by a dry run at `input_size`, logits per image."""

    task = "classification"

    def __init__(self, teacher: nn.Module | None, student: nn.Module, input_size: Sequence[int]):
        super().__init__(teacher, student)
        self.input_size = tuple(int(v) for v in input_size)

    def stages(self, teacher_stages=None, student_stages=None, teacher_form=None, student_form=None):
        teacher = self.model_stages("teacher", teacher_stages, teacher_form)
        student = self.model_stages("student", student_stages, student_form)
        if len(teacher) != len(student):
            raise FofakdError(
                f"the student has {len(student)} stages and the teacher {len(teacher)}; "
                "choose the same number of stage indices for both."
            )
        return teacher, student

    def model_stages(self, model, indices=None, form=None):
        return discover_stages(self.teacher if model == "teacher" else self.student, self.input_size, indices, form)

    def num_classes(self) -> int:
        return self.student.num_classes  # every timm classifier has it

    def prompt_sites(self, teacher_stages: ModelStages) -> tuple[nn.Module, ModelStages]:
        return self.teacher, teacher_stages

    def student_forward(self, images, targets, stages=None, token_drop="prefix"):
        if stages is None:
            return self.student(images), []
        return forward_stages(self.student, images, stages, token_drop)

    def teacher_forward(self, images, stages, token_drop="prefix"):
        return forward_stages(self.teacher, images, stages, token_drop)

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.teacher(images)

    def embedding_dims(self) -> tuple[int, int]:
        return embedding_dim(self.teacher, self.input_size), embedding_dim(self.student, self.input_size)

    def student_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_embedding(self.student, images)

    def teacher_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_embedding(self.teacher, images)

    def logit_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets

    def task_losses(self, logits, targets, ce_weight, label_smoothing):
        return {"loss_ce": (ce_weight, task_loss(logits, targets, label_smoothing))}
