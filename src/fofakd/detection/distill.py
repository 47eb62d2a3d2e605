"""Distilling Faster R-CNN detectors (docs/detection.md): features on the FPN levels, KD on ROI logits.

Teacher and student see the same resized batch; the teacher's ROI head classifies the proposals the student sampled,
so KD and the prompt regulariser compare logits of the same boxes. FOFA's region patchify and aligners are built
for the FPN grids of a reference image: the fixed size when the detectors have one, else a `min_size` square.
Batches of other sizes (torchvision keeps the aspect ratio) are resampled to those grids on the way in, and the
aligners write each level at the batch's own size.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.roi_heads import fastrcnn_loss

from ..errors import FofakdError
from ..features.hooks import StageInputHooks
from ..features.stages import ModelStages, StageInfo, recording_input_shapes
from ..methods import logit_method
from ..methods.losses import hcl_loss, kd_loss, kl_divergence
from ..modules.aligners import RegionsToMap
from ..modules.prompts import AdaptiveFeedbackPrompt
from ..modules.raa import RegionAwareAttention
from .models import TimmFPNBackbone

# The feature methods detection implements on FPN levels, with their options and defaults. Methods that compare
# logits only (kd, dkd, dist: `LogitDistiller`) are the registered classification methods, applied to ROI logits.
FEATURE_METHODS = {
    "fitnet": {"kd_weight": 1.0, "fd_weight": 1.0, "temperature": 1.0},
    "fofa": {"num_queries": 125, "dim": 64, "heads": 8, "se_mode": "bias", "use_feedback": True, "kd_weight": 1.0,
             "fd_weight": 1.0, "reg_weight": 1.0, "temperature": 1.0},
}
# The detector's own losses replace the classification task loss, so its options do not apply.
_TASK_LOSS_OPTIONS = ("ce_weight", "label_smoothing")


def roi_class_logits(detector: FasterRCNN, features: dict, proposals: list, image_sizes: list) -> torch.Tensor:
    """The detector's ROI-head class logits for given proposals."""
    heads = detector.roi_heads
    return heads.box_predictor(heads.box_head(heads.box_roi_pool(features, proposals, image_sizes)))[0]


def reference_size(detector: FasterRCNN) -> tuple[int, int]:
    """The image size FOFA's modules are built for: the detector's fixed size, else a square of its `min_size`."""
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
def teacher_backbone_stages(detector: FasterRCNN) -> tuple[ModelStages, list[tuple[int, int, int]]]:
    """The teacher body's last four stages as FOFA stages (input: where the prompt goes; output: the FPN level), and
    the shapes (C, H, W) of all its FPN levels, from one pass over a reference-size image."""
    backbone = detector.backbone
    if not isinstance(backbone, TimmFPNBackbone):
        raise FofakdError("FOFA's prompts need a timm backbone in the teacher; build it with a timm model name.")
    size = reference_size(detector)
    names = [_stage_module(backbone.body, n) for n in backbone.body.feature_info.module_name()[-4:]]
    was_training = backbone.training
    with recording_input_shapes(backbone.body, names) as inputs:
        try:
            levels = list(backbone.eval()(torch.zeros(1, 3, *size)).values())
        finally:
            backbone.train(was_training)
    layout = "NHWC" if backbone.channels_last else "NCHW"
    stages = []
    for i, name in enumerate(names):
        shape = inputs[name]
        channels, grid = (shape[3], shape[1:3]) if layout == "NHWC" else (shape[1], shape[2:4])
        stages.append(StageInfo(index=i, module=name, start_module=name, channels=levels[i].shape[1],
                                grid=tuple(levels[i].shape[2:]), form="map", input_layout=layout,
                                input_channels=channels, input_grid=tuple(grid)))
    return ModelStages(tuple(stages), (3, *size), 0), [tuple(f.shape[1:]) for f in levels]


class DetectionDistiller(nn.Module):
    """A student detector trained with its own losses plus a method's losses against a frozen teacher detector.

    Args:
        student: torchvision Faster R-CNN (FPN backbone, 5 levels).
        teacher: Frozen teacher detector with the same classes (None for scratch).
        method: "scratch"; "fitnet" (FPN features) or "fofa", implemented here on the FPN levels; or any method
            that compares logits only (kd, dkd, dist), applied to the teacher's ROI logits for the student's
            sampled proposals.
        **options: The method's options. fitnet and fofa: see `FEATURE_METHODS` (FOFA's `num_queries` region
            tokens over the 5 FPN levels, attention `dim` and `heads`, the prompts' `se_mode` and `use_feedback`,
            and the weights of KD on ROI logits, the feature loss and the prompt regulariser). Logit methods:
            their own options (`fofakd methods`), without `ce_weight` and `label_smoothing`.
    """

    def __init__(self, student: FasterRCNN, teacher: FasterRCNN | None = None, method: str = "fofa", **options):
        super().__init__()
        if method != "scratch" and teacher is None:
            raise FofakdError(f"detection method '{method}' needs a teacher detector.")
        self.method, self.student, self.teacher = method, student, teacher if method != "scratch" else None
        self.logit_method = None
        if method == "scratch":
            self._check_options(method, options, {})
        elif method not in FEATURE_METHODS:
            taken = sorted(set(options) & set(_TASK_LOSS_OPTIONS))
            if taken:
                raise FofakdError(f"detection trains with the detector's own losses, so {', '.join(taken)} does "
                                  "not apply; leave it out.")
            self.logit_method = logit_method(method, **options)
        else:
            options = {**FEATURE_METHODS[method], **self._check_options(method, options, FEATURE_METHODS[method])}
            self.kd_weight, self.fd_weight, self.temperature = (options[k] for k in ("kd_weight", "fd_weight",
                                                                                     "temperature"))
            self.reg_weight = options.get("reg_weight", 0.0)
        if self.teacher is not None:
            self.teacher.eval().requires_grad_(False)
            same = [getattr(student.transform, k) == getattr(teacher.transform, k)
                    for k in ("image_mean", "image_std", "min_size", "max_size", "fixed_size")]
            if not all(same):
                raise FofakdError("teacher and student detectors must resize and normalise images alike (same "
                                  "min_size, max_size, fixed_size, image_mean and image_std); build them so.")
        if method == "fitnet":
            self.projectors = nn.ModuleList(nn.Conv2d(s, t, kernel_size=1) for s, t in
                                            zip(self._level_channels(student), self._level_channels(teacher)))
        if method == "fofa":
            self.teacher_stages, teacher_levels = teacher_backbone_stages(teacher)
            student_levels = self._level_shapes(student)
            self.raa = RegionAwareAttention([s[0] for s in student_levels], [s[1:] for s in student_levels],
                                            num_queries=options["num_queries"], dim=options["dim"],
                                            num_heads=options["heads"])
            side = self.raa.regions_per_side
            self.aligners = nn.ModuleList(RegionsToMap(options["dim"], side, t[0], t[1:]) for t in teacher_levels)
            self.prompts = nn.ModuleList(AdaptiveFeedbackPrompt(s, options["se_mode"], options["use_feedback"])
                                         for s in self.teacher_stages)
            self.prompt_hooks = StageInputHooks(teacher.backbone.body, self.teacher_stages,
                                                dict(enumerate(self.prompts)))

    @staticmethod
    def _check_options(method: str, options: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(known))
        if unknown:
            named = f"use {', '.join(sorted(known))}" if known else "it takes none"
            raise FofakdError(f"detection method '{method}' has no option {', '.join(unknown)}; {named}.")
        return options

    @staticmethod
    @torch.no_grad()
    def _level_shapes(detector: FasterRCNN) -> list[tuple[int, int, int]]:
        """(C, H, W) of each FPN level for a reference-size image."""
        was_training = detector.backbone.training
        levels = detector.backbone.eval()(torch.zeros(1, 3, *reference_size(detector)))
        detector.backbone.train(was_training)
        return [tuple(f.shape[1:]) for f in levels.values()]

    @staticmethod
    def _level_channels(detector: FasterRCNN) -> list[int]:
        """Channels of each FPN level (the FPN's width, on all five levels)."""
        return [detector.backbone.out_channels] * 5

    def train(self, mode: bool = True) -> "DetectionDistiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen: BatchNorm statistics never move
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("teacher.")]

    def num_extra_parameters(self) -> int:
        """Training-only parameters (projectors, RAA, aligners, prompts)."""
        return sum(p.numel() for name, p in self.named_parameters()
                   if not name.startswith(("teacher.", "student.")))

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """Training losses: the detector's own (`loss_rpn_*`, `loss_classifier`, `loss_box_reg`), the method's, and
        their sum as `loss`."""
        student = self.student
        batch, targets = student.transform(images, targets)
        features = student.backbone(batch.tensors)
        proposals, rpn_losses = student.rpn(batch, features, targets)
        heads = student.roi_heads
        proposals, _, labels, regression_targets = heads.select_training_samples(proposals, targets)
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, batch.image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        parts = {"loss_rpn_objectness": (1.0, rpn_losses["loss_objectness"]),
                 "loss_rpn_box_reg": (1.0, rpn_losses["loss_rpn_box_reg"]),
                 "loss_classifier": (1.0, loss_classifier), "loss_box_reg": (1.0, loss_box_reg)}
        if self.teacher is not None:
            parts.update(self._distill(batch, features, proposals, class_logits, torch.cat(labels)))
        out = {name: loss for name, (_, loss) in parts.items()}
        out["loss"] = sum(weight * loss for weight, loss in parts.values())
        return out

    def _distill(self, batch: Any, features: dict, proposals: list, class_logits: torch.Tensor,
                 labels: torch.Tensor) -> dict:
        teacher = self.teacher
        with torch.no_grad():
            plain = teacher.backbone(batch.tensors)
            teacher_logits = roi_class_logits(teacher, plain, proposals, batch.image_sizes)
        if self.logit_method is not None:
            return self.logit_method.logit_losses(class_logits, teacher_logits, labels)
        parts = {"loss_kd": (self.kd_weight, kd_loss(class_logits, teacher_logits, self.temperature))}
        levels = list(features.values())
        if self.method == "fitnet":
            loss = sum(torch.nn.functional.mse_loss(p(s), t) for p, s, t in zip(self.projectors, levels,
                                                                                 plain.values()))
            parts["loss_fd"] = (self.fd_weight, loss)
        elif self.method == "fofa":
            with self.prompt_hooks.active():
                prompted = teacher.backbone(batch.tensors)
            prompted_logits = roi_class_logits(teacher, prompted, proposals, batch.image_sizes)
            targets = list(prompted.values())
            aligned = [a(r, t.shape[-2:]) for a, r, t in zip(self.aligners, self.raa(levels), targets)]
            parts["loss_fd"] = (self.fd_weight, sum(hcl_loss(a, t, tuple(t.shape[-2:])) for a, t in
                                                    zip(aligned, targets)))
            parts["loss_reg"] = (self.reg_weight, kl_divergence(teacher_logits, prompted_logits))
            for prompt, a, t in zip(self.prompts, aligned, targets):
                prompt.store_feedback(a - t)
        return parts
