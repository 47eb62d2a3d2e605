"""FOFA: region-aware attention on the student, adaptive feedback prompts in the frozen teacher (docs/method.md)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FofakdError
from ..features.hooks import StageInputHooks
from ..features.layout import to_map
from ..features.stages import stage_positions
from ..modules.aligners import build_region_aligner
from ..modules.init import INIT_MODES, reset_to_torch_defaults
from ..modules.prompts import AdaptiveFeedbackPrompt
from ..modules.raa import RegionAwareAttention
from ..options import NON_NEGATIVE, POSITIVE
from .base import Distiller, LossParts
from .losses import hcl_loss, kd_loss, kl_divergence
from .registry import register_method


TARGET_NORMS = ("none", "layer")
# Each preset's value of the options where fofakd departs from the authors' code (docs/faithfulness.md).
PRESETS = {
    "fofakd": {"pos_embed": "fixed", "init": "fofakd", "token_drop": "prefix", "prompt_reshape": "transpose",
               "feedback_order": "project_first"},
    "reference": {"pos_embed": "reference", "init": "reference", "token_drop": "last", "prompt_reshape": "reference",
                  "feedback_order": "resize_first"},
}
_CHOICES = {"token_drop": ("prefix", "last"), "prompt_reshape": ("transpose", "reference"),
            "feedback_order": ("project_first", "resize_first")}


def resolve_preset(preset: str, **given: str | None) -> dict[str, str]:
    """The preset's choices, overridden by every option given explicitly (not None)."""
    if preset not in PRESETS:
        raise FofakdError(f"preset '{preset}' is not known; use one of {', '.join(PRESETS)}.")
    out = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
    for key, allowed in _CHOICES.items():
        if out[key] not in allowed:
            raise FofakdError(f"{key} '{out[key]}' is not known; use one of {', '.join(allowed)}.")
    return out


def standardise_channels(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the channels at every position: dim 1 of a map, the last dim of tokens."""
    if x.ndim == 4:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2]).permute(0, 3, 1, 2)
    return F.layer_norm(x, x.shape[-1:])


@register_method("fofa")
class FOFA(Distiller):
    """Feature-based One-For-All distillation.

    Loss: `ce_weight * CE + kd_weight * KD + fd_weight * sum_i HCL(A_i, T_i) + reg_weight * KL(z_T || z_T')`.

    Args:
        teacher: Teacher (timm interface); frozen.
        student: Student (timm interface).
        input_size: (C, H, W) of the training inputs.
        num_queries: Region tokens over all stages (a square number per stage).
        dim: Attention width of the RAA.
        heads: Attention heads of the RAA.
        pos_embed: RAA positional encoding: "fixed", "reference" (the reference's batch-indexed one) or "none";
            None takes the preset's.
        use_raa: False skips the attention (aligners then see each stage's region tokens alone): an ablation.
        afp_stages: Teacher stage positions (0-based) that get a prompt; None = all, [] = no prompts.
        use_feedback: Fuse the previous step's feedback into the prompts.
        se_mode: Squeeze-excitation in the prompts: "bias" (reference) or "gate" (standard).
        kd_weight: Weight of Hinton KD against the unprompted teacher (alpha).
        fd_weight: Weight of the feature loss (beta).
        reg_weight: Weight of the prompt regulariser (gamma).
        temperature: KD temperature.
        **base_options: `ce_weight` and `label_smoothing` of the task loss (see `Distiller`).
        teacher_stages: Teacher feature indices overriding the defaults.
        student_stages: Student feature indices overriding the defaults.
        teacher_form: "map" or "tokens" overriding how teacher features are treated.
        student_form: "map" or "tokens" overriding how student features are treated.
        init: "fofakd" (Kaiming / trunc-normal weights, zero biases everywhere) or "reference" (the authors': RAA,
            fusion and prompt blocks keep PyTorch's default initialisation; aligners as "fofakd"); None takes the
            preset's.
        fd_warmup_steps: Ramp the feature loss's weight linearly from 0 to `fd_weight` over this many training
            steps (0: off, as in the paper). Opt-in, beyond the paper.
        target_norm: "none" (the paper) or "layer": standardise each teacher stage feature over its channels at
            every position (a LayerNorm without affine parameters) before the feature loss. Opt-in, beyond the
            paper: stages of very different scales then weigh alike.
        token_drop: Token features of a model with a class token: "prefix" drops the prefix tokens, "last" keeps
            the class token as grid cell 0 and drops the last patch token (the authors'); None takes the preset's.
        prompt_reshape: "transpose" lays token stage inputs on their grid and back correctly; "reference" holds out
            the last token and turns the prompted map back into tokens without the transpose (the authors' bug);
            None takes the preset's.
        feedback_order: The feedback aligner's order: "project_first" (BN, 1x1 conv, resize) or "resize_first"
            (the authors'); None takes the preset's.
        preset: "fofakd" (the defaults above) or "reference": every behaviour where fofakd departs from the
            authors' code set to theirs (pos_embed, init, token_drop, prompt_reshape, feedback_order). Options
            given explicitly override the preset.
    """

    option_ranges = {"dim": POSITIVE, "heads": POSITIVE, "num_queries": POSITIVE, "fd_warmup_steps": NON_NEGATIVE,
                     "fd_weight": NON_NEGATIVE, "kd_weight": NON_NEGATIVE, "reg_weight": NON_NEGATIVE,
                     "temperature": POSITIVE}

    # A prompt's fusion block has no gradient on the first step (there is no feedback yet), which DDP must allow.
    ddp_find_unused_parameters = True
    tasks = ("classification", "detection")

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        input_size: Sequence[int],
        *,
        num_queries: int = 64,
        dim: int = 512,
        heads: int = 8,
        pos_embed: str | None = None,
        use_raa: bool = True,
        afp_stages: Sequence[int] | None = None,
        use_feedback: bool = True,
        se_mode: str = "bias",
        kd_weight: float = 1.0,
        fd_weight: float = 1.0,
        reg_weight: float = 1.0,
        temperature: float = 1.0,
        teacher_stages: Sequence[int] | None = None,
        student_stages: Sequence[int] | None = None,
        teacher_form: str | None = None,
        student_form: str | None = None,
        init: str | None = None,
        fd_warmup_steps: int = 0,
        target_norm: str = "none",
        token_drop: str | None = None,
        prompt_reshape: str | None = None,
        feedback_order: str | None = None,
        preset: str = "fofakd",
        **base_options: Any,
    ):
        super().__init__(teacher, student, input_size, **base_options)
        choices = resolve_preset(preset, pos_embed=pos_embed, init=init, token_drop=token_drop,
                                 prompt_reshape=prompt_reshape, feedback_order=feedback_order)
        pos_embed, init = choices["pos_embed"], choices["init"]
        self.token_drop = choices["token_drop"]
        self.kd_weight, self.fd_weight, self.reg_weight = kd_weight, fd_weight, reg_weight
        self.temperature = temperature
        self.use_raa = use_raa
        self.teacher_stages, self.student_stages = self.discover_pair_stages(
            teacher_stages, student_stages, teacher_form, student_form
        )
        self.raa = RegionAwareAttention(
            [s.channels for s in self.student_stages],
            [s.grid for s in self.student_stages],
            num_queries=num_queries,
            dim=dim,
            num_heads=heads,
            pos_embed=pos_embed,
        )
        self.aligners = nn.ModuleList(
            build_region_aligner(dim, self.raa.regions_per_side, t) for t in self.teacher_stages
        )
        prompt_model, self.prompt_stages = self.source.prompt_sites(self.teacher_stages)
        prompt_stages = self.prompt_stages
        positions = stage_positions(afp_stages, len(prompt_stages), "afp_stages")
        self.prompts = nn.ModuleDict(
            {str(p): AdaptiveFeedbackPrompt(prompt_stages[p], se_mode, use_feedback,
                                            feedback_resize_first=choices["feedback_order"] == "resize_first")
             for p in positions}
        )
        if target_norm not in TARGET_NORMS:
            raise FofakdError(f"target_norm '{target_norm}' is not known; use one of {', '.join(TARGET_NORMS)}.")
        self.target_norm = target_norm
        self.fd_warmup_steps = int(fd_warmup_steps)
        if self.fd_warmup_steps > 0:  # a training-state counter, saved with the distiller for exact resume
            self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        if init not in INIT_MODES:
            raise FofakdError(f"init '{init}' is not known; use one of {', '.join(INIT_MODES)}.")
        if init == "reference":
            reset_to_torch_defaults(self.raa)
            for prompt in self.prompts.values():
                reset_to_torch_defaults(prompt.prompt)
                if prompt.fusion is not None:
                    reset_to_torch_defaults(prompt.fusion)
        self.prompt_hooks = StageInputHooks(
            prompt_model, prompt_stages, {int(p): prompt for p, prompt in self.prompts.items()},
            token_mode="reference" if choices["prompt_reshape"] == "reference" else "prefix",
        )

    def align(self, student_feats: Sequence[torch.Tensor], return_attention: bool = False,
              sizes: Sequence[tuple[int, int] | None] | None = None):
        """Student stage features -> features in the teacher stages' shapes (and RAA weights if asked); `sizes`
        overrides the grids of map stages (a detector's FPN levels at this batch's size)."""
        maps = [to_map(f, s.grid) for f, s in zip(student_feats, self.student_stages)]
        attention = None
        if self.use_raa:
            result = self.raa(maps, return_attention=return_attention)
            regions, attention = result if return_attention else (result, None)
        else:
            regions = [patchify(x) for patchify, x in zip(self.raa.patchify, maps)]
        sizes = sizes or [None] * len(regions)
        aligned = [aligner(r) if size is None else aligner(r, size)
                   for aligner, r, size in zip(self.aligners, regions, sizes)]
        return (aligned, attention) if return_attention else aligned

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        last = self.token_drop == "last"
        source = self.source
        student_logits, student_feats = source.student_forward(images, targets, self.student_stages, last)
        with torch.no_grad():
            teacher_logits, plain_feats = source.teacher_forward(images, self.teacher_stages, last)
        if self.prompts:
            with self.prompt_hooks.active():
                prompted_logits, teacher_feats = source.teacher_forward(images, self.teacher_stages, last)
        else:
            prompted_logits, teacher_feats = teacher_logits, plain_feats
        loss_fd = self.feature_loss(student_feats, teacher_feats)
        return student_logits, {
            "loss_kd": (self.kd_weight, kd_loss(student_logits, teacher_logits, self.temperature)),
            "loss_fd": (self.current_fd_weight(), loss_fd),
            "loss_reg": (self.reg_weight, kl_divergence(teacher_logits, prompted_logits)),
        }

    def feature_loss(self, student_feats: Sequence[torch.Tensor],
                     teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The feature loss: HCL between each aligned student stage and the (prompted) teacher stage. Stores each
        prompt's feedback for the next step and the per-stage losses for the diagnostics."""
        aligned = self.align(student_feats, sizes=[tuple(t.shape[-2:]) if t.ndim == 4 else None
                                                   for t in teacher_feats])
        if self.target_norm == "layer":
            teacher_feats = [standardise_channels(t) for t in teacher_feats]
        stage_losses = [hcl_loss(a, t, s.grid) for a, t, s in zip(aligned, teacher_feats, self.teacher_stages)]
        for position, prompt in self.prompts.items():
            p = int(position)
            prompt.store_feedback(aligned[p] - teacher_feats[p])
        self._stage_losses = [loss.detach() for loss in stage_losses]
        return sum(stage_losses)

    def current_fd_weight(self) -> float:
        """The feature loss's weight this step: `fd_weight`, ramped up over `fd_warmup_steps` when asked."""
        if self.fd_warmup_steps <= 0:
            return self.fd_weight
        done = int(self.steps_done)
        self.steps_done += 1
        return self.fd_weight * min(1.0, done / self.fd_warmup_steps)

    def step_diagnostics(self) -> dict[str, torch.Tensor]:
        """Per stage: the feature loss `fd_s<i>`; per prompt: `beta_s<i>`, `prompt_relative_size_s<i>` (the prompt's
        norm over its stage input's) and `feedback_rms_s<i>`; and `raa_entropy` (nats, at most ln N_q)."""
        out = {f"fd_s{i}": loss for i, loss in enumerate(getattr(self, "_stage_losses", []))}
        for position, prompt in self.prompts.items():
            out[f"beta_s{position}"] = prompt.beta.detach()
            if prompt.last_relative_size is not None:
                out[f"prompt_relative_size_s{position}"] = prompt.last_relative_size
            if prompt.feedback.numel():
                out[f"feedback_rms_s{position}"] = prompt.feedback.pow(2).mean().sqrt()
        if self.use_raa and self.raa.last_entropy is not None:
            out["raa_entropy"] = self.raa.last_entropy
        return out

    def reset_feedback(self) -> None:
        """Forget the stored feedback (the next step runs without it)."""
        for prompt in self.prompts.values():
            prompt.reset_feedback()
