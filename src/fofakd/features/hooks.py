"""Rewriting a stage's input through forward pre-hooks, so prompts enter any timm model without forward code."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from .layout import map_to_tokens, tokens_to_map
from .stages import ModelStages, StageInfo

MapTransform = Callable[[torch.Tensor], torch.Tensor]


# How a token stage input becomes a map and back: correctly, or as the FOFA authors' code does.
PromptReshape = Literal["transpose", "reference"]


def stage_input_to_map(
    x: torch.Tensor, stage: StageInfo, num_prefix_tokens: int, prompt_reshape: PromptReshape = "transpose"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A stage input as a map (B, C, h, w), plus the tokens held out of a token input (else None).

    "transpose" holds out the model's prefix tokens (class, distillation, registers). "reference" does what
    the FOFA authors' prompt does: when the token count is not a square it holds out the *last* token and lays the
    others, class token first, on the grid.
    """
    if stage.input_layout == "NCHW":
        return x, None
    if stage.input_layout == "NHWC":
        return x.permute(0, 3, 1, 2), None
    if prompt_reshape == "reference":
        held = x[:, -1:] if x.shape[1] != stage.input_grid[0] * stage.input_grid[1] else None
        return tokens_to_map(x if held is None else x[:, :-1], stage.input_grid), held
    prefix = x[:, :num_prefix_tokens] if num_prefix_tokens else None
    return tokens_to_map(x[:, num_prefix_tokens:], stage.input_grid), prefix


def map_to_stage_input(
    x: torch.Tensor, stage: StageInfo, held: torch.Tensor | None, prompt_reshape: PromptReshape = "transpose"
) -> torch.Tensor:
    """Inverse of `stage_input_to_map`, except in "reference" mode, which (as the authors' code) turns the map back
    into tokens with a plain reshape, without the transpose, and appends the held-out token at the end."""
    if stage.input_layout == "NCHW":
        return x
    if stage.input_layout == "NHWC":  # the authors' Swin runs on (B, L, C) tokens, so it gets their reshape too
        if prompt_reshape == "reference":
            return x.reshape(x.shape[0], *x.shape[2:], x.shape[1])
        return x.permute(0, 2, 3, 1)
    if prompt_reshape == "reference":
        tokens = x.reshape(x.shape[0], -1, x.shape[1])  # the authors' bug: scrambles channels and positions
        return tokens if held is None else torch.cat([tokens, held], dim=1)
    tokens = map_to_tokens(x)
    return tokens if held is None else torch.cat([held, tokens], dim=1)


class StageInputHooks:
    """Forward pre-hooks that pass chosen stages' inputs through map transforms while active.

    Registered once; they do nothing outside `with hooks.active():`, so one model serves both the plain and the
    rewritten forward pass.

    Args:
        model: The model to hook.
        stages: Its discovered stages.
        transforms: Stage position -> transform of the stage input as a map (B, C, h, w).
        prompt_reshape: How token inputs become maps and back: "transpose" (correct) or "reference" (the
            authors').
    """

    def __init__(self, model: nn.Module, stages: ModelStages, transforms: dict[int, MapTransform],
                 prompt_reshape: PromptReshape = "transpose"):
        self._active = False
        self.prompt_reshape = prompt_reshape
        self._handles = []
        for position, transform in transforms.items():
            stage = stages[position]
            module = model.get_submodule(stage.start_module)
            self._handles.append(
                module.register_forward_pre_hook(self._make_hook(stage, stages.num_prefix_tokens, transform))
            )

    def _make_hook(self, stage: StageInfo, num_prefix: int, transform: MapTransform):
        def hook(_module: nn.Module, args: tuple) -> tuple | None:
            if not self._active:
                return None
            x, held = stage_input_to_map(args[0], stage, num_prefix, self.prompt_reshape)
            return (map_to_stage_input(transform(x), stage, held, self.prompt_reshape), *args[1:])

        return hook

    @contextmanager
    def active(self) -> Iterator[None]:
        """Apply the transforms inside this block."""
        previous, self._active = self._active, True
        try:
            yield
        finally:
            self._active = previous

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

