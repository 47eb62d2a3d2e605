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
offsets read only padding; the shortcut leaves them out (a 1 x 1 map needs the centre tap alone), which a
convolution cannot. docs/speed.md derives it with the measured effect.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def rectangle_masks(size: int, kernel: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(kernel, size): row a marks the input positions a k-kernel offset a (padding k // 2) reads from."""
    return _masks(size, kernel, str(device), dtype)


@functools.lru_cache(maxsize=256)
def _masks(size: int, kernel: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    pad = kernel // 2
    index = torch.arange(size, device=device)
    offsets = torch.arange(kernel, device=device).unsqueeze(1) - pad  # (kernel, 1)
    return ((index >= offsets.clamp(min=0)) & (index < size + offsets.clamp(max=0))).to(dtype)


def rectangle_sums(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, k, k): the sum of x over the rectangle each kernel offset reads."""
    rows = rectangle_masks(x.shape[-2], kernel, x.device, x.dtype)
    cols = rectangle_masks(x.shape[-1], kernel, x.device, x.dtype)
    return rows @ x @ cols.transpose(0, 1)


def rectangle_areas(height: int, width: int, kernel: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(k, k): how many pixels each offset's rectangle holds."""
    rows = rectangle_masks(height, kernel, device, dtype).sum(1)
    cols = rectangle_masks(width, kernel, device, dtype).sum(1)
    return rows.unsqueeze(1) * cols.unsqueeze(0)


def _grouped_linear(x: torch.Tensor, conv: nn.Conv2d, bias_scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """A 1x1 convolution over dim 1 of x, (B, C) or (B, C, k, k), as one matrix product per group; its bias times
    `bias_scale`. On the shortcut's small tensors this costs far less than dispatching a convolution, and the batch
    goes into the columns, so the weight is never copied per sample (forward or backward)."""
    groups, batch = conv.groups, x.shape[0]
    weight = conv.weight.reshape(groups, conv.out_channels // groups, -1)  # (G, C_out / G, C_in / G)
    columns = x.reshape(batch, groups, weight.shape[2], -1)  # (B, G, C_in / G, N)
    positions = columns.shape[-1]
    columns = columns.permute(1, 2, 0, 3).reshape(groups, weight.shape[2], batch * positions)
    out = (weight @ columns).reshape(groups, weight.shape[1], batch, positions).permute(2, 0, 1, 3)
    out = out.reshape(batch, conv.out_channels, *x.shape[2:])
    if conv.bias is None:
        return out
    return out + conv.bias.view(1, -1, *([1] * (x.ndim - 2))) * bias_scale


def reachable_offsets(size: int, kernel: int) -> slice:
    """The kernel offsets along one axis whose rectangle holds any pixel: all k unless the map is smaller than
    k // 2 + 1, when the outer taps only ever read padding."""
    unreachable = max(kernel // 2 - size + 1, 0)
    return slice(unreachable, kernel - unreachable)


def mean_of_window_conv(conv: nn.Conv2d, sums: torch.Tensor, pixels: int,
                        taps: tuple[slice, slice] = (slice(None), slice(None))) -> torch.Tensor:
    """The spatial mean of a k x k, padding k // 2 convolution's output, (B, C_out), from rectangle sums of the
    kernel offsets `taps` (the others read only padding, so they add nothing and get no gradient)."""
    weight = conv.weight[:, :, taps[0], taps[1]]
    if conv.groups == 1:
        out = sums.flatten(1) @ weight.flatten(1).transpose(0, 1)
    elif conv.groups == conv.in_channels == conv.out_channels:  # depth-wise
        out = (sums * weight.squeeze(1)).sum(dim=(2, 3))
    else:
        out = F.conv2d(sums, weight, None, groups=conv.groups).flatten(1)
    out = out / pixels
    return out if conv.bias is None else out + conv.bias


def bias_mode_block(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """A bias-mode fusion or prompt block evaluated through rectangle sums: exactly `layers(x)`, shape (B, C, 1, 1).

    `layers` is 1x1 convs, one k x k convolution (padding k // 2), 1x1 convs, the bias-mode squeeze-excitation,
    then 1x1 convs.
    """
    modules = list(layers)
    window = next(i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1)
    kernel = modules[window].kernel_size[0]
    height, width = x.shape[-2:]
    taps = (reachable_offsets(height, kernel), reachable_offsets(width, kernel))
    sums = rectangle_sums(x, kernel)[:, :, taps[0], taps[1]]
    areas = rectangle_areas(height, width, kernel, x.device, x.dtype)[taps[0], taps[1]]
    for conv in modules[:window]:
        sums = _grouped_linear(sums, conv, areas)
    out = mean_of_window_conv(modules[window], sums, height * width, taps)  # (B, C)
    for module in modules[window + 1:]:
        if isinstance(module, nn.Conv2d):
            out = _grouped_linear(out, module)
        else:  # the bias-mode squeeze-excitation: its gate, from the mean it reads
            out = _grouped_linear(F.relu(_grouped_linear(out, module.reduce)), module.expand).sigmoid()
    return out[:, :, None, None]
