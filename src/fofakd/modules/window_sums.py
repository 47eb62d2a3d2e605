"""An exact shortcut for FOFA's bias-mode fusion and prompt blocks.

In `se_mode="bias"` a block is `linear convs -> squeeze-excitation gate -> 1x1 conv`, and the gate reads only the
global mean of the linear part's output. That mean is an exact function of a few sums of the block's input:

- a k x k convolution with zero padding k // 2 sums each input pixel once per kernel offset whose shifted output
  position lies inside the map, so the mean of its output is `sum_{c, a, d} w[o, c, a, d] * S[c, a, d] / (H W) + b`,
  where `S[c, a, d]` is the sum of input channel c over the rectangle that offset (a, d) reaches: the whole map
  less the border strips the offset pushes out;
- the 1x1 convolutions before it are per-pixel linear maps, so they act on those rectangle sums directly (their
  bias counted once per pixel of the rectangle);
- the 1x1 convolutions after it act on the mean.

So the block costs O(C (H + W) k) for the sums and O(C^2 k^2) for the convolutions, instead of O(C^2 k^2 H W), and
autograd through the sums is the exact gradient. On maps smaller than k // 2 + 1 pixels a side the outer kernel
offsets read only padding; the shortcut leaves them out of the sums (a 1 x 1 map needs the centre tap alone), which
a convolution cannot. The small tensors left over are kept channels-last, so every 1x1 convolution is one matrix
product with the batch and the offsets in its rows. docs/speed.md derives it with the measured effect.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Up to this many pixels the sums are one product with a (k*k, H*W) mask; above it the two products with the k x H
# and k x W masks cost fewer multiply-adds than the dense mask's k*k per pixel.
DENSE_MASK_PIXELS = 4096


def rectangle_masks(size: int, kernel: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(kernel, size): row a marks the input positions a k-kernel offset a (padding k // 2) reads from."""
    return _masks(size, kernel, str(device), dtype)


@functools.lru_cache(maxsize=256)
def _masks(size: int, kernel: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    pad = kernel // 2
    index = torch.arange(size, device=device)
    offsets = torch.arange(kernel, device=device).unsqueeze(1) - pad  # (kernel, 1)
    return ((index >= offsets.clamp(min=0)) & (index < size + offsets.clamp(max=0))).to(dtype)


def reachable_offsets(size: int, kernel: int) -> slice:
    """The kernel offsets along one axis whose rectangle holds any pixel: all k unless the map is smaller than
    k // 2 + 1, when the outer taps only ever read padding."""
    unreachable = max(kernel // 2 - size + 1, 0)
    return slice(unreachable, kernel - unreachable)


def _taps(height: int, width: int, kernel: int) -> tuple[slice, slice]:
    return reachable_offsets(height, kernel), reachable_offsets(width, kernel)


def rectangle_sums(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, r, s): the sum of x over the rectangle of each kernel offset that reaches the map (all
    k x k from 3 x 3 maps on; `reachable_offsets` per axis)."""
    height, width = x.shape[-2:]
    taps = _taps(height, width, kernel)
    rows = rectangle_masks(height, kernel, x.device, x.dtype)[taps[0]]
    cols = rectangle_masks(width, kernel, x.device, x.dtype)[taps[1]]
    if height * width > DENSE_MASK_PIXELS:
        return rows @ x @ cols.transpose(0, 1)
    mask = (rows[:, None, :, None] * cols[None, :, None, :]).reshape(-1, height * width)  # (r * s, H * W)
    # A 3-D tensor times a 2-D matrix folds into one matrix product, forward and backward.
    return (x.flatten(2) @ mask.transpose(0, 1)).unflatten(-1, (rows.shape[0], cols.shape[0]))


def rectangle_areas(height: int, width: int, kernel: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(r, s): how many pixels each reachable offset's rectangle holds."""
    taps = _taps(height, width, kernel)
    rows = rectangle_masks(height, kernel, device, dtype)[taps[0]].sum(1)
    cols = rectangle_masks(width, kernel, device, dtype)[taps[1]].sum(1)
    return rows.unsqueeze(1) * cols.unsqueeze(0)


def pointwise(x: torch.Tensor, conv: nn.Conv2d, bias_scale: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution on channels-last x (..., C_in), its bias times `bias_scale` (broadcast against the output's
    leading dims) when given. A grouped convolution becomes its block-diagonal dense weight: on these small tensors
    one matrix product costs less than a product per group."""
    weight = conv.weight.flatten(1)
    if conv.groups > 1:
        weight = torch.block_diag(*weight.chunk(conv.groups, dim=0))
    if conv.bias is None or bias_scale is None:
        return F.linear(x, weight, conv.bias)
    return F.linear(x, weight) + bias_scale.unsqueeze(-1) * conv.bias


def mean_of_window_conv(conv: nn.Conv2d, sums: torch.Tensor, pixels: int) -> torch.Tensor:
    """The spatial mean of a k x k, padding k // 2 convolution's output, (B, C_out), from the rectangle sums of
    every kernel offset, channels-last (B, k, k, C_in) (offsets that read only padding hold 0)."""
    batch, kernel = sums.shape[0], conv.kernel_size[0]
    if conv.groups == conv.in_channels == conv.out_channels:  # depth-wise
        out = (sums.flatten(1, 2) * conv.weight.flatten(1).transpose(0, 1)).sum(1)
    else:  # a k x k convolution without padding on the k x k sums is exactly the weighted sum over all offsets
        columns = sums.permute(0, 3, 1, 2)
        out = (F.linear(columns.reshape(batch, -1), conv.weight.flatten(1)) if conv.groups == 1
               else F.conv2d(columns, conv.weight, groups=conv.groups).flatten(1))
    out = out / pixels
    return out if conv.bias is None else out + conv.bias


def bias_mode_block(layers: nn.Sequential, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """A bias-mode fusion or prompt block evaluated through rectangle sums: exactly `layers(torch.cat(inputs, 1))`,
    shape (B, C, 1, 1). The inputs share their map size; their sums are concatenated, not the maps.

    `layers` is 1x1 convs, one k x k convolution (padding k // 2), 1x1 convs, the bias-mode squeeze-excitation,
    then 1x1 convs.
    """
    modules = list(layers)
    window = next(i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1)
    kernel = modules[window].kernel_size[0]
    height, width = inputs[0].shape[-2:]
    sums = torch.cat([rectangle_sums(x, kernel) for x in inputs], dim=1) if len(inputs) > 1 \
        else rectangle_sums(inputs[0], kernel)
    sums = sums.permute(0, 2, 3, 1)  # (B, r, s, C): channels last
    areas = rectangle_areas(height, width, kernel, sums.device, sums.dtype)
    for conv in modules[:window]:
        sums = pointwise(sums, conv, areas)
    rows, cols = _taps(height, width, kernel)
    if sums.shape[1:3] != (kernel, kernel):  # the offsets that read only padding sum to 0
        sums = F.pad(sums, (0, 0, cols.start, kernel - cols.stop, rows.start, kernel - rows.stop))
    out = mean_of_window_conv(modules[window], sums, height * width)  # (B, C)
    for module in modules[window + 1:]:
        if isinstance(module, nn.Conv2d):
            out = pointwise(out, module)
        else:  # the bias-mode squeeze-excitation: its gate, from the mean it reads
            out = pointwise(F.relu(pointwise(out, module.reduce)), module.expand).sigmoid()
    return out[:, :, None, None]
