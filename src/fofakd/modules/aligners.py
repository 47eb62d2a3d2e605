"""Aligners (docs/method.md, Aligners): map region tokens or maps onto a target feature's exact shape."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..features.stages import StageInfo
from .init import init_weights

# The feedback aligner's order: BN, 1x1 conv, then resize; or (the FOFA authors') resize first.
FeedbackOrder = Literal["project_first", "resize_first"]


class RegionsToMap(nn.Module):
    """(B, g*g, d) region tokens -> (B, C_t, H, W): lay on the g x g grid, resize (nearest), BN, 1x1 conv."""

    def __init__(self, dim: int, regions_per_side: int, out_channels: int, out_grid: tuple[int, int]):
        super().__init__()
        self.side = regions_per_side
        self.out_grid = tuple(out_grid)
        self.norm = nn.BatchNorm2d(dim)
        self.proj = nn.Conv2d(dim, out_channels, kernel_size=1, bias=False)
        init_weights(self)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """`size` overrides the output grid (a detector's FPN level at this batch's image size)."""
        batch, _, dim = x.shape
        x = x.transpose(1, 2).reshape(batch, dim, self.side, self.side)
        size = tuple(size) if size is not None else self.out_grid
        if size[0] % self.side == 0 and size[1] % self.side == 0:
            # Nearest upsampling by an integer factor repeats every region equally often, so BatchNorm's batch
            # statistics and the 1x1 conv are the same on the g x g grid: the same output, computed on g*g cells
            # instead of H*W (only BatchNorm's running variance sees a smaller n in its unbiasing factor).
            x = self.proj(self.norm(x))
            return x if size == (self.side, self.side) else F.interpolate(x, size=size, mode="nearest")
        return self.proj(self.norm(F.interpolate(x, size=size, mode="nearest")))


class RegionsToTokens(nn.Module):
    """(B, N, d) region tokens -> (B, L_t, D_t): BN over the N tokens, Linear d->D_t, BN(D_t), Linear N->L_t."""

    def __init__(self, num_regions: int, dim: int, out_length: int, out_dim: int):
        super().__init__()
        self.norm_tokens = nn.BatchNorm1d(num_regions)
        self.proj_dim = nn.Linear(dim, out_dim)
        self.norm_dim = nn.BatchNorm1d(out_dim)
        self.proj_length = nn.Linear(num_regions, out_length)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj_dim(self.norm_tokens(x))  # (B, N, D_t)
        x = self.proj_length(self.norm_dim(x.transpose(1, 2)))  # (B, D_t, L_t)
        return x.transpose(1, 2)


def build_region_aligner(dim: int, regions_per_side: int, target: StageInfo) -> nn.Module:
    """The aligner from (B, g*g, dim) region tokens to the target stage feature, by the target's form."""
    if target.form == "map":
        return RegionsToMap(dim, regions_per_side, target.channels, target.grid)
    h, w = target.grid
    return RegionsToTokens(regions_per_side**2, dim, h * w, target.channels)


class MapToMap(nn.Module):
    """(B, C_in, H_in, W_in) -> (B, C_out, H_out, W_out): BN, 1x1 conv without bias, nearest resize.

    `order="resize_first"` resizes before the BN and conv, as the FOFA authors' feedback aligner does; the two orders
    agree when the resize is by an integer factor (every pixel repeated equally often), and differ otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, out_grid: tuple[int, int],
                 order: FeedbackOrder = "project_first"):
        super().__init__()
        self.out_grid = tuple(out_grid)
        self.order = order
        self.norm = nn.BatchNorm2d(in_channels)
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        init_weights(self)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return x if tuple(x.shape[-2:]) == self.out_grid else F.interpolate(x, size=self.out_grid, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "resize_first":
            return self.proj(self.norm(self._resize(x)))
        return self._resize(self.proj(self.norm(x)))


def build_map_aligner(
    in_channels: int, in_grid: tuple[int, int], out_channels: int, out_grid: tuple[int, int],
    order: FeedbackOrder = "project_first",
) -> nn.Module:
    """Identity when the shapes already agree, else a `MapToMap`."""
    if in_channels == out_channels and tuple(in_grid) == tuple(out_grid):
        return nn.Identity()
    return MapToMap(in_channels, out_channels, out_grid, order)
