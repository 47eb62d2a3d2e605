"""Conversions between feature maps (B, C, H, W) and token sequences (B, L, D)."""
from __future__ import annotations

import math

import torch

from ..errors import FofakdError


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_map(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, L, D) -> (B, D, h, w) for a token grid (h, w) with h * w == L."""
    batch, length, dim = x.shape
    h, w = grid
    if h * w != length:
        raise ValueError(f"cannot lay {length} tokens on a {h}x{w} grid")
    return x.transpose(1, 2).reshape(batch, dim, h, w)


def infer_grid(num_tokens: int, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) token grid of `num_tokens` tokens whose aspect ratio follows the input image's."""
    img_h, img_w = image_hw
    h = max(1, round(math.sqrt(num_tokens * img_h / img_w)))
    w = num_tokens // h
    if h * w != num_tokens:
        raise FofakdError(
            f"cannot lay {num_tokens} tokens on a grid with the input's {img_h}x{img_w} aspect ratio; "
            "choose an input size the model's patch size divides evenly."
        )
    return h, w


def to_map(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A feature as a map: maps pass through, tokens are laid on `grid`."""
    return x if x.ndim == 4 else tokens_to_map(x, grid)
