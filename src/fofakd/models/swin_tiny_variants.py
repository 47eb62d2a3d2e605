"""Swin-Nano and Swin-Pico: the small Swin students of the OFA and FOFA papers, which timm does not ship.

| name | width | blocks per stage | heads per stage |
|---|---|---|---|
| swin_nano_patch4_window7_224 | 64 | 2, 2, 2, 2 | 2, 4, 8, 16 |
| swin_pico_patch4_window7_224 | 48 | 2, 2, 2, 2 | 2, 4, 8, 16 |

Both are registered in timm's registry (found by `timm.create_model` once fofakd is imported) and have no
pretrained weights: the papers train them from scratch as students.
"""
from __future__ import annotations

from timm.models import register_model
from timm.models._registry import generate_default_cfgs
from timm.models.swin_transformer import SwinTransformer, _cfg, _create_swin_transformer

default_cfgs = generate_default_cfgs({
    "swin_nano_patch4_window7_224": _cfg(),
    "swin_pico_patch4_window7_224": _cfg(),
})


def _build(name: str, pretrained: bool, embed_dim: int, kwargs: dict) -> SwinTransformer:
    args = {"patch_size": 4, "window_size": 7, "embed_dim": embed_dim, "depths": (2, 2, 2, 2),
            "num_heads": (2, 4, 8, 16), **kwargs}
    return _create_swin_transformer(name, pretrained=pretrained, **args)


@register_model
def swin_nano_patch4_window7_224(pretrained: bool = False, **kwargs) -> SwinTransformer:
    """Swin-Nano (width 64), the ImageNet Swin student of the OFA/FOFA papers."""
    return _build("swin_nano_patch4_window7_224", pretrained, 64, kwargs)


@register_model
def swin_pico_patch4_window7_224(pretrained: bool = False, **kwargs) -> SwinTransformer:
    """Swin-Pico (width 48), the CIFAR-100 Swin student of the OFA/FOFA papers."""
    return _build("swin_pico_patch4_window7_224", pretrained, 48, kwargs)
