"""Weight initialisation shared by fofakd's training-only modules (docs/method.md, Aligners)."""
from __future__ import annotations

from typing import Literal

from timm.layers import trunc_normal_
from torch import nn


def init_weights(module: nn.Module) -> None:
    """Convs Kaiming-normal (fan_out); Linear trunc-normal(0.02) with zero bias; norms weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


# How training-only modules are initialised: `init_weights`, or (the FOFA authors') PyTorch's defaults.
InitMode = Literal["fofakd", "reference"]


def reset_to_torch_defaults(module: nn.Module) -> None:
    """Re-draw every layer's parameters with PyTorch's own initialiser (`reset_parameters`), biases included.

    The FOFA authors leave the RAA, the fusion blocks and the prompt blocks at these defaults (uniform weights and
    non-zero biases); only their aligners get `init_weights`.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()
