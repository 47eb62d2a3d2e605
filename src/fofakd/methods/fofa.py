"""FOFA: region-aware attention on the student, adaptive feedback prompts in the frozen teacher (docs/method.md)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..features.hooks import StageInputHooks
from ..features.layout import to_map
from ..features.stages import stage_positions
from ..modules.aligners import build_region_aligner
from ..modules.init import reset_to_torch_defaults
from ..modules.prompts import AdaptiveFeedbackPrompt
from ..modules.raa import RegionAwareAttention
from .base import Distiller, LossParts
from .fofa_options import GROUPS, AttentionOptions, FaithfulnessOptions, LossOptions, PromptOptions, StageOptions
from .losses import hcl_loss, kd_loss, kl_divergence
from .registry import register_method


def standardise_channels(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the channels at every position: dim 1 of a map, the last dim of tokens."""
    if x.ndim == 4:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2]).permute(0, 3, 1, 2)
    return F.layer_norm(x, x.shape[-1:])


@register_method("fofa")
class FOFA(Distiller):
    """Feature-based One-For-All distillation.

    Loss: `ce_weight * CE + kd_weight * KD + fd_weight * sum_i HCL(A_i, T_i) + reg_weight * KL(z_T || z_T')`.

    Its options are the fields of the groups in `fofa_options` (loss, attention, prompts, stages, faithfulness),
    passed flat as keyword arguments like every method's (`build_distiller("fofa", ..., fd_weight=0.3)`); the rest
    are `Distiller`'s. The groups are kept as `self.loss`, `self.attention`, `self.prompt_options`, `self.stage_options`
    and `self.faithfulness` (with the preset resolved).
    """

    tasks = ("classification", "detection")
    option_groups = GROUPS

    # A prompt's fusion block has no gradient on the first step (there is no feedback yet), which DDP must allow.
    ddp_find_unused_parameters = True

    def __init__(self, teacher: nn.Module, student: nn.Module, input_size: Sequence[int], **options: Any):
        rest = dict(options)
        attention, prompts, loss = AttentionOptions.take(rest), PromptOptions.take(rest), LossOptions.take(rest)
        stages, faithfulness = StageOptions.take(rest), FaithfulnessOptions.take(rest)
        super().__init__(teacher, student, input_size, **rest)  # what is left is `Distiller`'s
        self.attention: AttentionOptions = attention
        self.prompt_options: PromptOptions = prompts
        self.loss: LossOptions = loss
        self.stage_options: StageOptions = stages
        self.faithfulness: FaithfulnessOptions = faithfulness.resolved()
        self.teacher_stages, self.student_stages = self.discover_pair_stages(
            stages.teacher_stages, stages.student_stages, stages.teacher_form, stages.student_form
        )
        self.raa = RegionAwareAttention(
            [s.channels for s in self.student_stages],
            [s.grid for s in self.student_stages],
            num_queries=attention.num_queries,
            dim=attention.dim,
            num_heads=attention.heads,
            pos_embed=self.faithfulness.pos_embed,
        )
        self.aligners = nn.ModuleList(
            build_region_aligner(attention.dim, self.raa.regions_per_side, t) for t in self.teacher_stages
        )
        prompt_model, self.prompt_stages = self.source.prompt_sites(self.teacher_stages)
        positions = stage_positions(prompts.afp_stages, len(self.prompt_stages), "afp_stages")
        self.prompts = nn.ModuleDict(
            {str(p): AdaptiveFeedbackPrompt(self.prompt_stages[p], prompts.se_mode, prompts.use_feedback,
                                            self.faithfulness.feedback_order)
             for p in positions}
        )
        if loss.fd_warmup_steps > 0:  # a training-state counter, saved with the distiller for exact resume
            self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        if self.faithfulness.init == "reference":
            reset_to_torch_defaults(self.raa)
            for prompt in self.prompts.values():
                reset_to_torch_defaults(prompt.prompt)
                if prompt.fusion is not None:
                    reset_to_torch_defaults(prompt.fusion)
        self.prompt_hooks = StageInputHooks(prompt_model, self.prompt_stages,
                                            {int(p): prompt for p, prompt in self.prompts.items()},
                                            self.faithfulness.prompt_reshape)

    def align(self, student_feats: Sequence[torch.Tensor], return_attention: bool = False,
              sizes: Sequence[tuple[int, int] | None] | None = None):
        """Student stage features -> features in the teacher stages' shapes (and RAA weights if asked); `sizes`
        overrides the grids of map stages (a detector's FPN levels at this batch's size)."""
        maps = [to_map(f, s.grid) for f, s in zip(student_feats, self.student_stages)]
        attention = None
        if self.attention.use_raa:
            result = self.raa(maps, return_attention=return_attention)
            regions, attention = result if return_attention else (result, None)
        else:
            regions = [patchify(x) for patchify, x in zip(self.raa.patchify, maps)]
        sizes = sizes or [None] * len(regions)
        aligned = [aligner(r) if size is None else aligner(r, size)
                   for aligner, r, size in zip(self.aligners, regions, sizes)]
        return (aligned, attention) if return_attention else aligned

    def distill(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, LossParts]:
        drop, source, loss = self.faithfulness.token_drop, self.source, self.loss
        student_logits, student_feats = source.student_forward(images, targets, self.student_stages, drop)
        with torch.no_grad():
            teacher_logits, plain_feats = source.teacher_forward(images, self.teacher_stages, drop)
        if self.prompts:
            with self.prompt_hooks.active():
                prompted_logits, teacher_feats = source.teacher_forward(images, self.teacher_stages, drop)
        else:
            prompted_logits, teacher_feats = teacher_logits, plain_feats
        loss_fd = self.feature_loss(student_feats, teacher_feats)
        return student_logits, {
            "loss_kd": (loss.kd_weight, kd_loss(student_logits, teacher_logits, loss.temperature)),
            "loss_fd": (self.current_fd_weight(), loss_fd),
            "loss_reg": (loss.reg_weight, kl_divergence(teacher_logits, prompted_logits)),
        }

    def feature_loss(self, student_feats: Sequence[torch.Tensor],
                     teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The feature loss: HCL between each aligned student stage and the (prompted) teacher stage. Stores each
        prompt's feedback for the next step and the per-stage losses for the diagnostics."""
        aligned = self.align(student_feats, sizes=[tuple(t.shape[-2:]) if t.ndim == 4 else None
                                                   for t in teacher_feats])
        if self.loss.target_norm == "layer":
            teacher_feats = [standardise_channels(t) for t in teacher_feats]
        stage_losses = [hcl_loss(a, t, s.grid) for a, t, s in zip(aligned, teacher_feats, self.teacher_stages)]
        for position, prompt in self.prompts.items():
            p = int(position)
            prompt.store_feedback(aligned[p] - teacher_feats[p])
        self._stage_losses = [loss.detach() for loss in stage_losses]
        return sum(stage_losses)

    def current_fd_weight(self) -> float:
        """The feature loss's weight this step: `fd_weight`, ramped up over `fd_warmup_steps` when asked."""
        weight, warmup = self.loss.fd_weight, self.loss.fd_warmup_steps
        if warmup <= 0:
            return weight
        done = int(self.steps_done)
        self.steps_done += 1
        return weight * min(1.0, done / warmup)

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
        if self.attention.use_raa and self.raa.last_entropy is not None:
            out["raa_entropy"] = self.raa.last_entropy
        return out

    def reset_feedback(self) -> None:
        """Forget the stored feedback (the next step runs without it)."""
        for prompt in self.prompts.values():
            prompt.reset_feedback()
