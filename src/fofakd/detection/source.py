"""Detectors as a feature source (docs/detection.md): the registered methods distil Faster R-CNN detectors.

Stage features are the five FPN levels of teacher and student. The logits to distil are ROI-head class logits: the
student's for the proposals it sampled, the teacher's for those very boxes. Prompts go into the last four stages of
the teacher's timm body; each gets feedback from its FPN level. Teacher and student see the same resized batch. The
methods' modules are built for the FPN grids of a reference image (the detectors' fixed size, else a `min_size`
square) and take batches of other sizes (torchvision keeps the aspect ratio) at their own grids.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.roi_heads import fastrcnn_loss

from ..errors import FofakdError
from ..features.stages import ModelStages, StageInfo, recording_input_shapes
from ..methods import Distiller, FeatureSource, build_distiller
from ..methods.source import LossParts
from .models import TimmFPNBackbone

# The detector's own losses replace the classification task loss, so its options do not apply.
_TASK_LOSS_OPTIONS = ("ce_weight", "label_smoothing")
_STAGE_OPTIONS = ("teacher_stages", "student_stages", "teacher_form", "student_form")


def roi_class_logits(detector: FasterRCNN, features: dict, proposals: list, image_sizes: list) -> torch.Tensor:
    """The detector's ROI-head class logits for given proposals."""
    heads = detector.roi_heads
    return heads.box_predictor(heads.box_head(heads.box_roi_pool(features, proposals, image_sizes)))[0]


def reference_size(detector: FasterRCNN) -> tuple[int, int]:
    """The image size the methods' modules are built for: the detector's fixed size, else a `min_size` square."""
    transform = detector.transform
    if getattr(transform, "fixed_size", None) is not None:
        return tuple(transform.fixed_size)
    side = transform.min_size[-1] if isinstance(transform.min_size, (tuple, list)) else transform.min_size
    return (int(side), int(side))


def _stage_module(body: nn.Module, name: str) -> str:
    """timm's feature wrappers flatten module names ("stages.0" -> "stages_0")."""
    for candidate in (name, name.replace(".", "_")):
        try:
            body.get_submodule(candidate)
            return candidate
        except AttributeError:
            continue
    raise FofakdError(f"cannot find the backbone stage module '{name}'; this timm backbone is not supported.")


@torch.no_grad()
def fpn_levels(detector: FasterRCNN) -> ModelStages:
    """The detector's five FPN levels as map stages, at the reference size."""
    was_training = detector.backbone.training
    size = reference_size(detector)
    try:
        levels = list(detector.backbone.eval()(torch.zeros(1, 3, *size)).values())
    finally:
        detector.backbone.train(was_training)
    stages = tuple(StageInfo(index=i, module="", start_module="", channels=f.shape[1], grid=tuple(f.shape[2:]),
                             form="map", input_layout="NCHW", input_channels=f.shape[1], input_grid=tuple(f.shape[2:]))
                   for i, f in enumerate(levels))
    return ModelStages(stages, (3, *size), 0)


@torch.no_grad()
def teacher_prompt_stages(detector: FasterRCNN, levels: ModelStages) -> ModelStages:
    """The teacher body's last four stages: each with its input (where the prompt goes) and the shape of its FPN
    level (the feedback's)."""
    backbone = detector.backbone
    if not isinstance(backbone, TimmFPNBackbone):
        raise FofakdError("FOFA's prompts need a timm backbone in the teacher; build it with a timm model name.")
    names = [_stage_module(backbone.body, n) for n in backbone.body.feature_info.module_name()[-4:]]
    was_training = backbone.training
    with recording_input_shapes(backbone.body, names) as inputs:
        try:
            backbone.eval()(torch.zeros(1, *levels.input_size))
        finally:
            backbone.train(was_training)
    layout = "NHWC" if backbone.channels_last else "NCHW"
    stages = []
    for i, name in enumerate(names):
        shape = inputs[name]
        channels, grid = (shape[3], shape[1:3]) if layout == "NHWC" else (shape[1], shape[2:4])
        stages.append(StageInfo(index=i, module=name, start_module=name, channels=levels[i].channels,
                                grid=levels[i].grid, form="map", input_layout=layout, input_channels=channels,
                                input_grid=tuple(grid)))
    return ModelStages(tuple(stages), levels.input_size, 0)


class DetectorSource(FeatureSource):
    """Faster R-CNN detectors (FPN backbone) as a method's teacher and student.

    A training step runs the student detector as far as its losses (`student_forward`), keeping the resized batch,
    the sampled proposals and their labels; the teacher then reads the same batch and classifies the same boxes.
    """

    task = "detection"
    # FOFA's region tokens: 25 per FPN level (5 x 5 regions), a narrow attention.
    method_defaults = {"fofa": {"num_queries": 125, "dim": 64}}

    def __init__(self, teacher: FasterRCNN | None, student: FasterRCNN):
        super().__init__(teacher, student)
        if teacher is not None:
            same = [getattr(student.transform, k) == getattr(teacher.transform, k)
                    for k in ("image_mean", "image_std", "min_size", "max_size", "fixed_size")]
            if not all(same):
                raise FofakdError("teacher and student detectors must resize and normalise images alike (same "
                                  "min_size, max_size, fixed_size, image_mean and image_std); build them so.")
        self._step: dict[str, Any] = {}

    def stages(self, teacher_stages=None, student_stages=None, teacher_form=None, student_form=None):
        given = [n for n, v in zip(_STAGE_OPTIONS, (teacher_stages, student_stages, teacher_form, student_form))
                 if v is not None]
        if given:
            raise FofakdError(f"detection distils the five FPN levels, so {', '.join(given)} does not apply; "
                              "leave it out.")
        return fpn_levels(self.teacher), fpn_levels(self.student)

    def prompt_sites(self, teacher_stages: ModelStages) -> tuple[nn.Module, ModelStages]:
        return self.teacher.backbone.body, teacher_prompt_stages(self.teacher, teacher_stages)

    def student_forward(self, images, targets, stages=None, token_drop="prefix"):
        student = self.student
        batch, targets = student.transform(images, targets)
        features = student.backbone(batch.tensors)
        proposals, rpn_losses = student.rpn(batch, features, targets)
        heads = student.roi_heads
        proposals, _, labels, regression_targets = heads.select_training_samples(proposals, targets)
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, batch.image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        self._step = {"batch": batch, "proposals": proposals, "labels": torch.cat(labels), "losses": {
            "loss_rpn_objectness": (1.0, rpn_losses["loss_objectness"]),
            "loss_rpn_box_reg": (1.0, rpn_losses["loss_rpn_box_reg"]),
            "loss_classifier": (1.0, loss_classifier), "loss_box_reg": (1.0, loss_box_reg)}}
        return class_logits, list(features.values()) if stages is not None else []

    def teacher_forward(self, images, stages, token_drop="prefix"):
        batch = self._step["batch"]
        features = self.teacher.backbone(batch.tensors)
        logits = roi_class_logits(self.teacher, features, self._step["proposals"], batch.image_sizes)
        return logits, list(features.values())

    def teacher_logits(self, images: Any) -> torch.Tensor:
        return self.teacher_forward(images, None)[0]

    def logit_targets(self, targets: Any) -> torch.Tensor:
        return self._step["labels"]

    def task_losses(self, logits, targets, ce_weight, label_smoothing) -> LossParts:
        losses, self._step = self._step["losses"], {}  # the step's last read: hold no graph until the next
        return losses


def build_detection_distiller(method: str, teacher: FasterRCNN | None, student: FasterRCNN,
                              **options: Any) -> Distiller:
    """Registered method `method` on a teacher and a student detector.

    Args:
        method: Any method `fofakd methods` lists for detection (scratch, kd, dkd, dist, fitnet, fofa).
        teacher: The frozen teacher detector (None for scratch).
        student: The student detector.
        **options: The method's options, without the classification task loss's (`ce_weight`,
            `label_smoothing`) and stage selections (detection uses the five FPN levels).
    """
    if method != "scratch" and teacher is None:
        raise FofakdError(f"detection method '{method}' needs a teacher detector.")
    taken = sorted(set(options) & set(_TASK_LOSS_OPTIONS))
    if taken:
        raise FofakdError(f"detection trains with the detector's own losses, so {', '.join(taken)} does not apply; "
                          "leave it out.")
    teacher = teacher if method != "scratch" else None
    return build_distiller(method, teacher=teacher, student=student, input_size=(3, *reference_size(student)),
                           source=DetectorSource(teacher, student), **options)

