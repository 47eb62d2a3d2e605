"""Adaptive Feedback Prompts (docs/method.md, Adaptive feedback prompts): trainable prompt blocks inside the frozen teacher."""
from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FofakdError
from ..features.layout import to_map
from ..features.stages import StageInfo
from .aligners import FeedbackOrder, build_map_aligner
from .init import init_weights
from .window_sums import bias_mode_block

# Squeeze-excitation: the gate alone as a per-channel bias (the FOFA authors'), or the standard gate on x.
SeMode = Literal["bias", "gate"]
SE_MODES = typing.get_args(SeMode)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation. "gate" multiplies the gate onto x (standard); "bias" returns the gate alone, (B, C, 1, 1),
    as the reference code does, which makes the prompt a per-sample, per-channel bias."""

    def __init__(self, channels: int, reduction: int = 16, mode: str = "bias"):
        super().__init__()
        if mode not in SE_MODES:
            raise FofakdError(f"se_mode '{mode}' is not known; use one of {', '.join(SE_MODES)}.")
        hidden = max(1, channels // reduction)
        self.mode = mode
        self.reduce = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(self.act(self.reduce(x.mean(dim=(2, 3), keepdim=True)))).sigmoid()
        return gate if self.mode == "bias" else x * gate


def _groups(channels: int, wanted: int = 4) -> int:
    return wanted if channels % wanted == 0 else 1


class _GatedBlock(nn.Sequential):
    """Convs, a squeeze-excitation, a 1x1 conv. In bias mode the output is (B, C, 1, 1) and is computed through the
    exact window-sum shortcut (window_sums.py) unless `use_window_sums` is turned off."""

    def __init__(self, *layers: nn.Module, se_mode: str):
        super().__init__(*layers)
        self.use_window_sums = se_mode == "bias"

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The block on its inputs concatenated along the channels."""
        if self.use_window_sums:
            return bias_mode_block(self, inputs)
        return super().forward(torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0])


class FusionBlock(_GatedBlock):
    """Fuses a stage input (C channels) with its feedback (C channels) back into C channels."""

    def __init__(self, channels: int, se_mode: str):
        super().__init__(
            nn.Conv2d(2 * channels, channels, kernel_size=1),
            nn.Conv2d(channels, channels, kernel_size=5, padding=2),
            nn.Conv2d(channels, channels, kernel_size=1),
            SqueezeExcite(channels, mode=se_mode),
            nn.Conv2d(channels, channels, kernel_size=1),
            se_mode=se_mode,
        )


class PromptBlock(_GatedBlock):
    """Turns the (fused) stage input into the prompt added to it."""

    def __init__(self, channels: int, se_mode: str):
        groups = _groups(channels)
        super().__init__(
            nn.Conv2d(channels, channels, kernel_size=1, groups=groups),
            nn.Conv2d(channels, channels, kernel_size=5, padding=2, groups=channels),
            nn.Conv2d(channels, channels, kernel_size=1),
            SqueezeExcite(channels, mode=se_mode),
            nn.Conv2d(channels, channels, kernel_size=1, groups=groups),
            se_mode=se_mode,
        )


class AdaptiveFeedbackPrompt(nn.Module):
    """The prompt for one teacher stage: `x + beta * prompt(fuse(x, feedback))`, beta initialised to 0.

    The feedback of the previous training step (aligned student minus prompted teacher, in the stage-output shape)
    is kept in the `feedback` buffer, so it is saved and restored with the module's state dict.

    Args:
        stage: The teacher stage this prompt sits in front of.
        se_mode: Squeeze-excitation mode, "bias" (reference) or "gate" (standard).
        use_feedback: Fuse the previous step's feedback; False gives "AFP without feedback".
        feedback_order: The feedback aligner's order: "project_first", or "resize_first" (the authors').
    """

    def __init__(self, stage: StageInfo, se_mode: SeMode = "bias", use_feedback: bool = True,
                 feedback_order: FeedbackOrder = "project_first"):
        super().__init__()
        channels = stage.input_channels
        self.stage = stage
        self.use_feedback = use_feedback
        self.prompt = PromptBlock(channels, se_mode)
        self.fusion = FusionBlock(channels, se_mode) if use_feedback else None
        self.feedback_aligner = (
            build_map_aligner(stage.channels, stage.grid, channels, stage.input_grid, feedback_order)
            if use_feedback else None
        )
        self.beta = nn.Parameter(torch.zeros(()))
        self.register_buffer("feedback", torch.zeros(0))
        self.last_relative_size: torch.Tensor | None = None
        init_weights(self)

    def _current_feedback(self, batch: int) -> torch.Tensor | None:
        # Sample k of this step is paired with sample k of the previous step; a step larger than the stored
        # one (after a smaller last batch) gets no feedback rather than a partial one.
        if not self.use_feedback or self.feedback.numel() == 0 or self.feedback.shape[0] < batch:
            return None
        return to_map(self.feedback[:batch], self.stage.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: the stage input as a map (B, C, h, w)."""
        feedback = self._current_feedback(x.shape[0])
        fused = x
        if feedback is not None:
            feedback = self.feedback_aligner(feedback.to(x.dtype))
            if feedback.shape[-2:] != x.shape[-2:]:  # a detector's batch of another image size than the last
                feedback = F.interpolate(feedback, size=x.shape[-2:], mode="nearest")
            fused = self.fusion(x, feedback)
        prompt = self.beta.to(x.dtype) * self.prompt(fused)
        if self.training:
            with torch.no_grad():  # diagnostics: how large the prompt is next to the stage input it shifts
                # a (B, C, 1, 1) prompt is added at every one of the h*w positions
                repeats = x[0, 0].numel() // prompt[0, 0].numel()
                self.last_relative_size = torch.linalg.vector_norm(prompt.float()) * repeats**0.5 / \
                    torch.linalg.vector_norm(x.float()).clamp_min(1e-12)
        return x + prompt

    @torch.no_grad()
    def store_feedback(self, difference: torch.Tensor) -> None:
        """Keep `difference` (aligned student minus prompted teacher, stage-output shape) for the next step."""
        if self.use_feedback:
            self.feedback = difference.detach().float().clone()

    def reset_feedback(self) -> None:
        self.feedback = torch.zeros(0, device=self.beta.device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # The feedback's batch size changes with the run, so take the stored tensor as it is.
        key = prefix + "feedback"
        if key in state_dict:
            self.feedback = state_dict[key].to(self.beta.device).clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
