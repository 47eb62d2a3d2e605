"""Stage discovery: which intermediate features of a timm model FOFA uses, found by a dry run.

A model is cut into `num_stages` stages (4 by default). Hierarchical nets (ResNet, ConvNeXt, Swin, MobileNet, ...)
use their last resolution stages; isotropic nets (ViT, DeiT, Mixer, ResMLP) use blocks at 2/12, 4/12, 10/12 and
12/12 of their depth. Everything (channels, grids, where each stage starts) is read off the model, never typed.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import torch
from torch import nn

from ..errors import FofakdError
from .layout import infer_grid, map_to_tokens, tokens_to_map

# Which tokens of a model with a class token are left out of its token features: the prefix tokens, or (the FOFA
# authors' code) the last patch token.
TokenDrop = Literal["prefix", "last"]
ISOTROPIC_CUTS = (2, 4, 10, 12)  # stage ends as twelfths of an isotropic net's depth (blocks 1, 3, 9, 11 of 12)


@dataclass(frozen=True)
class StageInfo:
    """One stage of a model.

    Attributes:
        index: The stage's index for the model's `forward_intermediates`.
        module: Name of the module whose output is the stage feature.
        start_module: Name of the stage's first module; prompts are injected into its input.
        channels: Channels of the stage output.
        grid: (H, W) of the stage output.
        form: "map" (B, C, H, W) or "tokens" (B, H*W, C): how the stage feature is presented.
        input_layout: Layout of the start module's input: "NCHW", "NHWC" or "NLC".
        input_channels: Channels of the start module's input.
        input_grid: (h, w) of the start module's input.
    """

    index: int
    module: str
    start_module: str
    channels: int
    grid: tuple[int, int]
    form: str
    input_layout: str
    input_channels: int
    input_grid: tuple[int, int]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the stage feature in its form."""
        h, w = self.grid
        return (self.channels, h, w) if self.form == "map" else (h * w, self.channels)


@dataclass(frozen=True)
class ModelStages:
    """The stages of one model at one input size, plus what is needed to read its inner activations."""

    stages: tuple[StageInfo, ...]
    input_size: tuple[int, int, int]
    num_prefix_tokens: int
    last_is_final: bool = False  # the last stage is the body's final pre-pooling map (e.g. MobileNet's conv_head)

    @property
    def indices(self) -> list[int]:
        return [s.index for s in self.stages]

    def __len__(self) -> int:
        return len(self.stages)

    def __getitem__(self, i: int) -> StageInfo:
        return self.stages[i]


def _feature_entries(model: nn.Module) -> list[dict]:
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates") or not hasattr(model, "forward_head"):
        raise FofakdError(
            f"model {type(model).__name__} does not expose timm's feature_info, forward_intermediates and "
            "forward_head; build it with fofakd.create_model or timm.create_model."
        )
    return [dict(e) for e in info]


def default_stage_indices(model: nn.Module, num_stages: int = 4) -> list[int]:
    """The feature indices FOFA uses for `model` by default (docs/method.md, Stages)."""
    entries = _feature_entries(model)
    if _is_isotropic(entries):
        depth = len(entries)
        if depth < num_stages:
            raise FofakdError(f"an isotropic model with {depth} blocks cannot be cut into {num_stages} stages.")
        if num_stages == len(ISOTROPIC_CUTS):
            fractions = [c / 12 for c in ISOTROPIC_CUTS]
        else:
            fractions = [(i + 1) / num_stages for i in range(num_stages)]
        indices: list[int] = []
        for f in fractions:
            cut = max(round(depth * f) - 1, indices[-1] + 1 if indices else 0)
            indices.append(cut)
        indices[-1] = depth - 1
        return indices
    if len(entries) < num_stages:
        raise FofakdError(
            f"model {type(model).__name__} has {len(entries)} feature stages, fewer than the {num_stages} needed; "
            "pass fewer stages or choose another model."
        )
    return list(range(len(entries) - num_stages, len(entries)))


def _is_isotropic(entries: list[dict]) -> bool:
    return len({e["reduction"] for e in entries}) == 1


def _start_module(end: str, previous_end: str | None) -> str:
    """The first module of the stage that ends at `end`, given where the previous stage ended.

    A stage that is one container (ResNet `layer2`, ConvNeXt `stages.1`) starts at itself. A stage that is a
    run of numbered blocks (ViT `blocks.9`, MobileNet `blocks.4`) starts after the previous stage's last block.
    """
    parent, _, last = end.rpartition(".")
    if not last.isdigit():
        return end
    if previous_end is not None:
        prev_parent, _, prev_last = previous_end.rpartition(".")
        if prev_parent == parent and prev_last.isdigit():
            return f"{parent}.{int(prev_last) + 1}"
    return f"{parent}.0"


def discover_stages(
    model: nn.Module,
    input_size: Sequence[int],
    indices: Sequence[int] | None = None,
    form: str | None = None,
    num_stages: int = 4,
) -> ModelStages:
    """Find a model's stages and their shapes by a dry run at `input_size` (C, H, W).

    Args:
        model: A timm model (anything with `feature_info`, `forward_intermediates` and `forward_head`).
        input_size: (C, H, W) of the inputs the model will see.
        indices: Feature indices to use instead of the defaults (negative values count from the end).
        form: "map" or "tokens" to override how stage features are presented; by default isotropic and
            channels-last models (ViT, Mixer, Swin) give tokens and the rest maps, as the reference does.
        num_stages: How many stages to use when `indices` is not given.
    """
    entries = _feature_entries(model)
    isotropic = _is_isotropic(entries)
    if indices is None:
        indices = default_stage_indices(model, num_stages)
    indices = [i + len(entries) if i < 0 else i for i in indices]
    if any(not 0 <= i < len(entries) for i in indices) or sorted(set(indices)) != list(indices):
        raise FofakdError(
            f"stage indices {list(indices)} must be distinct, increasing and within the model's "
            f"{len(entries)} feature entries."
        )
    channels_last = getattr(model, "output_fmt", "NCHW") != "NCHW"
    if form is None:
        form = "tokens" if (isotropic or channels_last) else "map"
    if form not in ("map", "tokens"):
        raise FofakdError(f"feature form '{form}' is not known; use 'map' or 'tokens'.")

    ends = [entries[i]["module"] for i in indices]
    first_previous = entries[indices[0] - 1]["module"] if (not isotropic and indices[0] > 0) else None
    starts = [_start_module(end, prev) for end, prev in zip(ends, [first_previous] + ends[:-1])]

    starts = [_after_patch_merging(model, start) for start in starts]
    final, feats, seen_inputs = _dry_run(model, input_size, indices, starts)
    # The last stage of a map model is its body's final pre-pooling map, as in the authors' code: the same tensor as
    # the last intermediate for ResNet or ConvNeXt, and the head convolution's output for MobileNet / EfficientNet.
    last_is_final = (form == "map" and indices[-1] == len(entries) - 1 and final.ndim == 4
                     and final.shape[2:] == feats[-1].shape[2:])
    if last_is_final:
        feats = [*feats[:-1], final]
    image_hw = (int(input_size[1]), int(input_size[2]))
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    stages = []
    for idx, end, start, feat, seen in zip(indices, ends, starts, feats, seen_inputs):
        layout, in_chans, in_grid = _describe_input(seen, channels_last, prefix, image_hw)
        stages.append(
            StageInfo(
                index=idx, module=end, start_module=start, channels=feat.shape[1], grid=tuple(feat.shape[2:]),
                form=form, input_layout=layout, input_channels=in_chans, input_grid=in_grid,
            )
        )
    return ModelStages(stages=tuple(stages), input_size=tuple(int(v) for v in input_size), num_prefix_tokens=prefix,
                       last_is_final=last_is_final)


def _after_patch_merging(model: nn.Module, name: str) -> str:
    """A stage that begins with patch merging (timm 1.x Swin) gets its prompt after the merge, in front of its first
    block, where the authors' timm 0.6.5 Swin (which ends each stage with the merge) has it."""
    module = model.get_submodule(name)
    merge, blocks = getattr(module, "downsample", None), getattr(module, "blocks", None)
    if blocks is not None and type(merge).__name__ == "PatchMerging":
        return f"{name}.blocks"
    return name


def _dry_run(
    model: nn.Module, input_size: Sequence[int], indices: list[int], starts: list[str]
) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, ...]]]:
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
    with recording_input_shapes(model, starts) as seen:
        try:
            model.eval()
            with torch.no_grad():
                final, feats = model.forward_intermediates(x, indices=indices, output_fmt="NCHW")
        except (RuntimeError, AssertionError, ValueError) as err:
            raise FofakdError(
                f"{type(model).__name__} does not accept inputs of size {tuple(input_size)} ({err}); "
                "build the model for this image size or resize the data."
            ) from None
        finally:
            model.train(was_training)
    return final, feats, [seen[name] for name in starts]


@contextmanager
def recording_input_shapes(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, tuple[int, ...]]]:
    """While open, the shape of the first input each named submodule receives, by name."""
    seen: dict[str, tuple[int, ...]] = {}
    handles = []

    def recorder(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            seen.setdefault(name, tuple(args[0].shape))

        return hook

    try:
        for name in names:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise FofakdError(f"stage start module '{name}' was not found in {type(model).__name__}; pass "
                                  "stage indices explicitly.") from None
            handles.append(module.register_forward_pre_hook(recorder(name)))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _describe_input(
    shape: tuple[int, ...], channels_last: bool, prefix: int, image_hw: tuple[int, int]
) -> tuple[str, int, tuple[int, int]]:
    if len(shape) == 4:
        if channels_last:
            return "NHWC", shape[3], (shape[1], shape[2])
        return "NCHW", shape[1], (shape[2], shape[3])
    if len(shape) == 3:
        return "NLC", shape[2], infer_grid(shape[1] - prefix, image_hw)
    raise FofakdError(f"a stage input of shape {shape} is neither a map nor a token sequence.")


def forward_stages(
    model: nn.Module, x: torch.Tensor, stages: ModelStages, token_drop: TokenDrop = "prefix"
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and stage features of `model` in one forward pass; features in each stage's form.

    Token features leave out the model's prefix tokens ("prefix"). `token_drop="last"` reproduces the FOFA authors'
    code for a model with one prefix token instead: the class token stays first and the last patch token is dropped.
    """
    if token_drop == "last" and stages.num_prefix_tokens:
        if stages.num_prefix_tokens != 1:
            raise FofakdError("dropping the last token (the authors' token handling) needs a model with exactly one "
                              "prefix token; use token_drop='prefix'.")
        final, pairs = model.forward_intermediates(x, indices=stages.indices, output_fmt="NCHW",
                                                   return_prefix_tokens=True)
        feats = [torch.cat([prefix, map_to_tokens(f)], dim=1)[:, :-1] for f, prefix in pairs]
        feats = [f if s.form == "tokens" else tokens_to_map(f, s.grid) for f, s in zip(feats, stages.stages)]
        return model.forward_head(final), feats
    final, feats = model.forward_intermediates(x, indices=stages.indices, output_fmt="NCHW")
    logits = model.forward_head(final)
    if stages.last_is_final:
        feats = [*feats[:-1], final]
    feats = [f if s.form == "map" else map_to_tokens(f) for f, s in zip(feats, stages.stages)]
    return logits, feats


def forward_embedding(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the pooled pre-logits embedding of `model` in one pass through its body."""
    features = model.forward_features(x)
    return model.forward_head(features), model.forward_head(features, pre_logits=True)


def embedding_dim(model: nn.Module, input_size: Sequence[int]) -> int:
    """Width of the pooled pre-logits embedding, by a dry run."""
    was_training = model.training
    param = next(model.parameters(), None)
    try:
        model.eval()
        with torch.no_grad():
            x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
            return forward_embedding(model, x)[1].shape[-1]
    finally:
        model.train(was_training)


def stage_positions(selection: Sequence[int] | None, num_stages: int, option: str = "stages") -> list[int]:
    """Normalise a stage selection (None = all, negatives count from the end) to sorted positions.

    Raises:
        FofakdError: A position is not one of the `num_stages` stages (`option` names the method option).
    """
    if selection is None:
        return list(range(num_stages))
    outside = [p for p in selection if not -num_stages <= p < num_stages]
    if outside:
        raise FofakdError(f"method option '{option}' names stage {outside[0]}, but there are {num_stages} stages: "
                          f"give positions from 0 to {num_stages - 1} (or -{num_stages} to -1).")
    return sorted({p + num_stages if p < 0 else p for p in selection})
