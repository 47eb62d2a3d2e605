"""Projectors from a student stage feature to a teacher stage's shape (FitNet) or to logits (OFA branches)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import PatchMerging
from timm.models.vision_transformer import Block
from torch import nn

from ..features.stages import StageInfo
from .init import init_weights

OFA_FINAL_GRID = 7  # the OFA reference merges token grids down to about 7 x 7 before its transformer blocks


class FeatureProjector(nn.Module):
    """Student map (B, C_s, H_s, W_s) -> teacher map (B, C_t, H_t, W_t): adaptive pooling to the teacher grid (it
    averages when shrinking and repeats when growing), then a 1x1 conv and BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, out_grid: tuple[int, int]):
        super().__init__()
        self.out_grid = tuple(out_grid)
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        init_weights(self)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """`size` overrides the output grid (a detector's FPN level at this batch's image size)."""
        size = tuple(size) if size is not None else self.out_grid
        if tuple(x.shape[-2:]) != size:
            x = F.adaptive_avg_pool2d(x, size)
        return self.norm(self.proj(x))


class SepConv(nn.Sequential):
    """Two depth-wise separable 3x3 convs, the first with stride 2 (DARTS style), each with BN and ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class MapExitBranch(nn.Sequential):
    """OFA exit branch for a map stage: strided separable convs down to the last stage's resolution, global average
    pooling, linear classifier (as the OFA authors' code).

    Args:
        stage: The student stage.
        downsamples: Stride-2 steps between this stage and the student's last stage.
        width: Channels before the classifier.
        num_classes: Classifier size.
    """

    def __init__(self, stage: StageInfo, downsamples: int, width: int, num_classes: int):
        channels = stage.channels
        layers: list[nn.Module] = []
        for i in range(downsamples):
            out = width if i == downsamples - 1 else channels * 2
            layers.append(SepConv(channels, out))
            channels = out
        if not downsamples:
            layers.append(nn.Conv2d(channels, width, kernel_size=1))
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
        init_weights(self)


class TokenExitBranch(nn.Module):
    """OFA exit branch for a token stage: patch merging down to about 7 x 7, a few transformer blocks, mean over
    tokens, linear classifier.

    Args:
        stage: The student stage (tokens (B, h*w, C)).
        num_blocks: Transformer blocks after merging.
        width: Token width after merging (divisible by 4 heads).
        num_classes: Classifier size.
    """

    def __init__(self, stage: StageInfo, num_blocks: int, width: int, num_classes: int):
        super().__init__()
        self.grid = stage.grid
        merges = max(int(math.log2(min(stage.grid) / OFA_FINAL_GRID)), 0)
        layers: list[nn.Module] = [
            PatchMerging(stage.channels if i == 0 else width, width) for i in range(merges)
        ]
        if not merges and stage.channels != width:
            layers.append(nn.Linear(stage.channels, width))
        self.merge = nn.Sequential(*layers)
        heads = 4 if width % 4 == 0 else 1
        self.blocks = nn.Sequential(*[Block(dim=width, num_heads=heads) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        x = self.merge(x.reshape(batch, *self.grid, channels))  # NHWC for patch merging
        x = self.blocks(x.flatten(1, 2))
        return self.head(self.norm(x).mean(dim=1))


def build_exit_branch(
    stage: StageInfo, last_stage: StageInfo, position: int, num_stages: int, width: int, num_classes: int
) -> nn.Module:
    """The OFA exit branch for one student stage, by the stage's form."""
    if stage.form == "map":
        downsamples = max(round(math.log2(stage.grid[0] / last_stage.grid[0])), 0)
        return MapExitBranch(stage, downsamples, width, num_classes)
    return TokenExitBranch(stage, max(num_stages - 1 - position, 1), width, num_classes)
