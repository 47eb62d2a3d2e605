"""A detection run's detectors from its config, and a trained student detector from its saved spec."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torchvision.models.detection import FasterRCNN

from ..engine.run_dir import read_student_spec
from ..errors import FofakdError
from ..models.checkpoint import load_weights
from .config import DetectionConfig
from .data import DetectionData
from .models import build_detector

SIZE_KEYS = ("min_size", "max_size", "fixed_size")


def detector_from_spec(spec: dict[str, Any], weights: str | Path | None = None, reset_head: bool = False,
                       pretrained: bool = False) -> FasterRCNN:
    """Build the detector a spec describes (see `detection_spec`) and load `weights` into it."""
    try:
        detector = build_detector(spec["model"], spec["num_classes"], pretrained_backbone=pretrained,
                                  backbone_kwargs=spec.get("kwargs"), **spec["detector"])
    except TypeError as err:
        raise FofakdError(f"detector option not understood ({err}); see torchvision's FasterRCNN arguments, "
                          "fpn_channels and representation_size.") from None
    if weights is not None:
        load_weights(detector, weights, reset_head=reset_head)
    return detector


def detection_spec(name: str, kwargs: dict[str, Any], options: dict[str, Any], cfg: DetectionConfig,
                   data: DetectionData) -> dict[str, Any]:
    """Everything needed to rebuild a detector and read its labels (saved as student.json)."""
    return {"task": "detection", "model": name, "kwargs": dict(kwargs), "num_classes": data.num_classes,
            "detector": {**options, **cfg.input_size()}, "categories": data.categories, "data": cfg.data,
            "data_dir": str(data.root)}


def read_detection_spec(run: Path) -> dict[str, Any]:
    """The spec of a finished `fofakd detect` run directory, or of its (exported) weights file."""
    try:
        spec, _ = read_student_spec(run)
    except FofakdError:
        spec = {}
    if spec.get("task") != "detection":
        raise FofakdError(f"'{run}' is not a finished `fofakd detect` run (no detection spec); pass one, "
                          "or a weights file with --teacher NAME.")
    return spec


def build_detection_models(cfg: DetectionConfig, command: str,
                           data: DetectionData) -> tuple[nn.Module | None, nn.Module, dict[str, Any]]:
    """(teacher or None, student, student spec) for `fofakd detect train` or `fofakd detect distill`."""
    if command == "train":
        if not cfg.model:
            raise FofakdError("fofakd detect train needs --model NAME (a timm backbone, or tv/resnet18 and the like).")
        spec = detection_spec(cfg.model, cfg.model_kwargs, cfg.detector_options, cfg, data)
        return None, detector_from_spec(spec, cfg.checkpoint, cfg.reset_head, cfg.pretrained), spec
    if not cfg.student:
        raise FofakdError("fofakd detect distill needs --student NAME (a timm backbone, or tv/resnet18 and the like).")
    if not cfg.teacher_checkpoint:
        raise FofakdError("the teacher detector needs weights: pass --teacher-checkpoint (a `fofakd detect train` "
                          "run directory, or a weights file with --teacher NAME).")
    source = Path(cfg.teacher_checkpoint)
    if cfg.teacher:
        name, kwargs, options = cfg.teacher, {}, {}
    else:
        trained = read_detection_spec(source)
        if trained["num_classes"] != data.num_classes:
            raise FofakdError(f"the teacher run detects {trained['num_classes'] - 1} categories but the data has "
                              f"{data.num_classes - 1}; distil on the data the teacher was trained on.")
        name, kwargs = trained["model"], trained["kwargs"]
        options = {k: v for k, v in trained["detector"].items() if k not in SIZE_KEYS}
    teacher_spec = detection_spec(name, {**kwargs, **cfg.teacher_kwargs},
                                  {**options, **cfg.teacher_detector_options}, cfg, data)
    teacher = detector_from_spec(teacher_spec, source)
    spec = detection_spec(cfg.student, cfg.student_kwargs, cfg.detector_options, cfg, data)
    return teacher, detector_from_spec(spec, pretrained=cfg.pretrained), spec
