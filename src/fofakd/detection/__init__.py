"""Object detection: COCO-format data, Faster R-CNN + FPN detectors from timm or torchvision backbones, COCO mAP,
distillation (`DetectionDistiller`) and the `fofakd detect` runs.

The public names are imported on first use, so the command line starts without loading torchvision's detectors.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CocoDetection": "fofakd.detection.coco",
    "coco_evaluate": "fofakd.detection.coco",
    "collate_detection": "fofakd.detection.coco",
    "build_detector": "fofakd.detection.models",
    "make_synthetic_coco": "fofakd.detection.synthetic",
    "DetectionDistiller": "fofakd.detection.distill",
    "DetectionConfig": "fofakd.detection.config",
    "run_detection": "fofakd.detection.trainer",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fofakd.detection' has no attribute '{name}'")
