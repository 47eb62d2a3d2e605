"""Object detection: COCO-format data, Faster R-CNN + FPN detectors from timm or torchvision backbones, COCO mAP."""
from .coco import CocoDetection, coco_evaluate, collate_detection
from .models import build_detector
from .synthetic import make_synthetic_coco

__all__ = ["CocoDetection", "build_detector", "coco_evaluate", "collate_detection", "make_synthetic_coco"]
