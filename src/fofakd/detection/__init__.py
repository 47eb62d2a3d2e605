"""Object detection: COCO-format data, Faster R-CNN + FPN detectors from timm or torchvision backbones, COCO mAP,
distillation with the registered methods (`build_detection_distiller`) and the `fofakd detect` runs.

The public names are imported on first use, so the command line starts without loading torchvision's detectors.
"""
from __future__ import annotations

from ..lazy import lazy_exports

_LAZY = {
    "CocoDetection": "fofakd.detection.coco",
    "coco_evaluate": "fofakd.detection.coco",
    "collate_detection": "fofakd.detection.coco",
    "build_detector": "fofakd.detection.models",
    "make_synthetic_coco": "fofakd.detection.synthetic",
    "build_detection_distiller": "fofakd.detection.source",
    "DetectionConfig": "fofakd.detection.config",
    "run_detection": "fofakd.detection.training",
}

__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY, globals())
