"""`create_model`: any timm model, optionally with weights from a local checkpoint."""
from __future__ import annotations

import difflib
from pathlib import Path

import timm
from torch import nn

from ..errors import FofakdError, first_line
from . import small  # noqa: F401 -- registers the small-image variants with timm
from . import swin_tiny_variants  # noqa: F401 -- registers Swin-Nano and Swin-Pico with timm
from .checkpoint import load_weights
from .sources import resolve_source
from .spec_file import checkpoint_spec


def has_fixed_input_size(name: str) -> bool:
    """Whether the timm model `name` is built for one input size (ViT, Mixer, Swin) rather than any."""
    cfg = timm.models.get_pretrained_cfg(name.split(".")[0])
    return bool(cfg is not None and getattr(cfg, "fixed_input_size", False))


def create_model(
    name: str | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    checkpoint: str | Path | None = None,
    pretrained: bool = False,
    reset_head: bool = False,
    **kwargs,
) -> nn.Module:
    """Build a timm model for `num_classes` classes and `in_chans` input channels.

    A fofakd export or run directory describes its own model: `create_model(checkpoint="fofa.safetensors")` needs
    no other argument, and arguments given explicitly win over the file's.

    Args:
        name: A timm model name (or one of fofakd's small-image variants, see `fofakd.models.small`), or a model
            with its source as timm names it: `local-dir:FOLDER` (a timm model folder) or `hf-hub:ORG/NAME`;
            `pretrained` then loads the source's weights.
        num_classes: Classifier size.
        in_chans: Input channels (default 3; 1 for grey-scale data).
        img_size: Input size for models built for a fixed size (ViT, Mixer, Swin); ignored by CNNs.
        checkpoint: A local weights file (timm/torchvision state dict, .safetensors, or a fofakd run directory).
        pretrained: Download timm's pretrained weights (needs network); ignored when `checkpoint` is given.
        reset_head: When the checkpoint's classifier has another class count, keep a fresh head instead of failing.
        **kwargs: Passed to the timm constructor (e.g. `patch_size=4`, `drop_path_rate=0.1`).
    """
    spec = checkpoint_spec(checkpoint) if checkpoint is not None else None
    if spec is not None and spec.get("task", "classification") == "classification" and name in (None, spec["model"]):
        name, kwargs = spec["model"], {**spec.get("kwargs", {}), **kwargs}
        num_classes = spec["num_classes"] if num_classes is None else num_classes
        in_chans = spec["in_chans"] if in_chans is None else in_chans
        img_size = spec["img_size"] if img_size is None else img_size
    if name is None or num_classes is None:
        raise FofakdError("create_model needs a model name and num_classes, unless `checkpoint` is a fofakd export "
                          "or run directory that records them.")
    in_chans = 3 if in_chans is None else in_chans
    source = resolve_source(name)  # `local-dir:` and `hf-hub:` names: what their config.json builds
    architecture = source[0] if source is not None else None
    if architecture is None and not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else "; see timm.list_models()"
        raise FofakdError(f"model '{name}' is not a timm model name{hint}.")
    if img_size is not None and has_fixed_input_size(architecture or name):
        kwargs["img_size"] = img_size
    try:
        model = timm.create_model(
            name, pretrained=pretrained and checkpoint is None, num_classes=num_classes, in_chans=in_chans, **kwargs
        )
    except TypeError as err:
        raise FofakdError(f"model '{name}' does not take these options ({err}); check the model arguments.") from None
    if checkpoint is not None:
        load_weights(model, checkpoint, reset_head=reset_head)
    return model


def check_input_size(model: nn.Module, input_size: tuple[int, int, int], role: str) -> None:
    """Run `model` once on a blank (C, H, W) image; a model that cannot take that size gets one clear sentence."""
    import torch

    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size))
    except (RuntimeError, AssertionError, ValueError) as err:
        reason = first_line(err)
        raise FofakdError(
            f"the {role} ({type(model).__name__}) cannot take {input_size[1]}x{input_size[2]} px inputs ({reason}); "
            f"raise --img-size or give the {role} a smaller patch or stride."
        ) from None
    finally:
        model.train(was_training)
