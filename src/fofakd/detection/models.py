"""Faster R-CNN + FPN detectors (torchvision) on timm or torchvision backbones."""
from __future__ import annotations

from collections import OrderedDict

import timm
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import FofakdError
from ..models import factory  # noqa: F401 -- registers fofakd's timm variants (Swin-Nano/Pico, small-image nets)

TORCHVISION_PREFIX = "tv/"


class TimmFPNBackbone(nn.Module):
    """A timm `features_only` body with torchvision's FPN on its last four levels and a max-pooled fifth level.

    Bodies that return channels-last maps (Swin) are permuted to NCHW. `body` is the timm model, so FOFA's prompts
    can sit before its stages.

    Args:
        name: timm model name.
        out_channels: FPN width.
        pretrained: Load timm's pretrained weights into the body.
        **kwargs: Passed to `timm.create_model` (e.g. img_size for fixed-size models).
    """

    def __init__(self, name: str, out_channels: int = 256, pretrained: bool = False, **kwargs):
        super().__init__()
        try:
            self.body = timm.create_model(name, features_only=True, pretrained=pretrained, **kwargs)
        except RuntimeError as err:
            raise FofakdError(f"timm model '{name}' cannot serve as a detection backbone ({err}); pick another.") \
                from None
        channels = self.body.feature_info.channels()
        if len(channels) < 4:
            raise FofakdError(f"timm model '{name}' has {len(channels)} feature levels; FPN needs 4 or more.")
        self.in_channels = channels[-4:]
        self.channels_last = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")
        self.fpn = FeaturePyramidNetwork(self.in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        levels = self.body(x)[-4:]
        if self.channels_last:
            levels = [f.permute(0, 3, 1, 2).contiguous() for f in levels]
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(levels)))


def build_backbone(name: str, out_channels: int = 256, pretrained: bool = False, **kwargs) -> nn.Module:
    """`tv/resnet18`-style names use torchvision's ResNet FPN backbone; any other name is a timm model."""
    if name.startswith(TORCHVISION_PREFIX):
        arch = name[len(TORCHVISION_PREFIX):]
        try:
            return resnet_fpn_backbone(backbone_name=arch, weights="DEFAULT" if pretrained else None,
                                       trainable_layers=5)
        except (KeyError, ValueError) as err:
            raise FofakdError(f"'{arch}' is not a torchvision ResNet ({err}); use e.g. tv/resnet18 or a timm name.") \
                from None
    return TimmFPNBackbone(name, out_channels, pretrained, **kwargs)


def default_anchor_sizes(min_size: int) -> tuple[tuple[int], ...]:
    """torchvision's anchors (32 to 512 px for 800 px images), scaled to the image size, at least 8 px."""
    return tuple((max(8, round(s * min_size / 800)),) for s in (32, 64, 128, 256, 512))


def build_detector(backbone: str, num_classes: int, min_size: int = 800, max_size: int = 1333,
                   pretrained_backbone: bool = False, fpn_channels: int = 256, representation_size: int = 1024,
                   backbone_kwargs: dict | None = None, **detector_kwargs) -> FasterRCNN:
    """Faster R-CNN with FPN.

    Args:
        backbone: timm name, or `tv/<resnet>` for torchvision's ResNet FPN backbone (256 FPN channels).
        num_classes: Object classes plus the background class.
        min_size: Shorter image side after torchvision's resize.
        max_size: Longest image side after the resize.
        pretrained_backbone: Start the backbone from pretrained weights (needs network).
        fpn_channels: FPN width (timm backbones).
        representation_size: Width of the two-layer box head (torchvision's default 1024).
        backbone_kwargs: Extra `timm.create_model` arguments.
        **detector_kwargs: torchvision `FasterRCNN` options (e.g. box_batch_size_per_image).
    """
    if detector_kwargs.get("fixed_size") is not None:  # a JSON spec gives a list; the transforms compare tuples
        detector_kwargs["fixed_size"] = tuple(detector_kwargs["fixed_size"])
    body = build_backbone(backbone, fpn_channels, pretrained_backbone, **(backbone_kwargs or {}))
    anchors = AnchorGenerator(default_anchor_sizes(min_size), ((0.5, 1.0, 2.0),) * 5)
    resolution = 7
    box_head = TwoMLPHead(body.out_channels * resolution**2, representation_size)
    detector = FasterRCNN(body, min_size=min_size, max_size=max_size, rpn_anchor_generator=anchors,
                          box_head=box_head, box_predictor=FastRCNNPredictor(representation_size, num_classes),
                          **detector_kwargs)
    # What fofakd's checkpoint loader reads to tell a class-count mismatch (and what --reset-head may drop).
    detector.pretrained_cfg = {"classifier": ["roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"]}
    return detector
