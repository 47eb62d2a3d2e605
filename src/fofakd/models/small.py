"""Small-image variants of timm models whose names fix a patch size too large for 28-64 px images.

timm's Mixer and ResMLP entry points hard-code patch 16 (they reject a `patch_size` argument), so fofakd registers
patch-4 variants in timm's registry (`timm.create_model` finds them once fofakd is imported):

| name | family | patch | blocks | width | default input |
|---|---|---|---|---|---|
| mixer_s4_32 | MLP-Mixer-S | 4 | 8 | 512 | 32 |
| mixer_b4_32 | MLP-Mixer-B | 4 | 12 | 768 | 32 |
| resmlp_12_p4_32 | ResMLP-12 | 4 | 12 | 384 | 32 |
| resmlp_24_p4_32 | ResMLP-24 | 4 | 24 | 384 | 32 |

All accept `patch_size`, `img_size` and `in_chans` overrides. ViT, DeiT and Swin need no variant: their timm
entry points take `patch_size=4` (and `img_size`) directly.
"""
from __future__ import annotations

from timm.models import register_model
from timm.models._registry import generate_default_cfgs
from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock, _create_mixer


def _cfg() -> dict:
    return {
        "num_classes": 1000, "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0,
        "interpolation": "bicubic", "fixed_input_size": True, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
        "first_conv": "stem.proj", "classifier": "head",
    }


default_cfgs = generate_default_cfgs({
    "mixer_s4_32": _cfg(),
    "mixer_b4_32": _cfg(),
    "resmlp_12_p4_32": _cfg(),
    "resmlp_24_p4_32": _cfg(),
})


def _build(name: str, pretrained: bool, defaults: dict, kwargs: dict) -> MlpMixer:
    args = {"patch_size": 4, "img_size": 32, **defaults, **kwargs}
    return _create_mixer(name, pretrained=pretrained, **args)


@register_model
def mixer_s4_32(pretrained: bool = False, **kwargs) -> MlpMixer:
    """MLP-Mixer-S with 4x4 patches for small images."""
    return _build("mixer_s4_32", pretrained, {"num_blocks": 8, "embed_dim": 512}, kwargs)


@register_model
def mixer_b4_32(pretrained: bool = False, **kwargs) -> MlpMixer:
    """MLP-Mixer-B with 4x4 patches for small images."""
    return _build("mixer_b4_32", pretrained, {"num_blocks": 12, "embed_dim": 768}, kwargs)


@register_model
def resmlp_12_p4_32(pretrained: bool = False, **kwargs) -> MlpMixer:
    """ResMLP-12 with 4x4 patches for small images."""
    defaults = {"num_blocks": 12, "embed_dim": 384, "mlp_ratio": 4, "block_layer": ResBlock, "norm_layer": Affine}
    return _build("resmlp_12_p4_32", pretrained, defaults, kwargs)


@register_model
def resmlp_24_p4_32(pretrained: bool = False, **kwargs) -> MlpMixer:
    """ResMLP-24 with 4x4 patches for small images."""
    defaults = {"num_blocks": 24, "embed_dim": 384, "mlp_ratio": 4, "block_layer": ResBlock, "norm_layer": Affine}
    return _build("resmlp_24_p4_32", pretrained, defaults, kwargs)
