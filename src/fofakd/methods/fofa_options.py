"""FOFA's options, grouped by what they configure: each group a small frozen dataclass whose fields are the flat
option names of the command line, YAML and `build_distiller(**options)`, declared (kind, range, choices) and
checked in one place. `method_options.json` and `fofakd methods` are generated from these same fields.

A string choice is a `Literal` type, the one vocabulary from the user's option down to the module that acts on it.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..features.hooks import PromptReshape
from ..features.stages import TokenDrop
from ..modules.aligners import FeedbackOrder
from ..modules.init import InitMode
from ..modules.prompts import SeMode
from ..modules.raa import PosEmbed
from ..options import NON_NEGATIVE, POSITIVE, Range, check_option, option_choices, option_kinds

TargetNorm = Literal["none", "layer"]
StageForm = Literal["map", "tokens"]
Preset = Literal["fofakd", "reference"]


def _option(default: Any, bounds: Range | None = None) -> Any:
    return field(default=default, metadata={"range": bounds})


class OptionGroup:
    """A frozen group of method options that checks its values against their declarations when built."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_option(f"method 'fofa' option '{f.name}'", getattr(self, f.name), option_kinds(hints[f.name]),
                                 f.metadata.get("range"), option_choices(hints[f.name]))
            object.__setattr__(self, f.name, value)

    @classmethod
    def take(cls, options: dict[str, Any]) -> "OptionGroup":
        """The group of the options in `options` that are its fields (removed from `options`), defaults elsewhere."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: options.pop(k) for k in list(options) if k in names})


@dataclass(frozen=True)
class LossOptions(OptionGroup):
    """The loss: `ce_weight * CE + kd_weight * KD + fd_weight * sum_i HCL(A_i, T_i) + reg_weight * KL(z_T || z_T')`.

    Attributes:
        kd_weight: Weight of Hinton KD against the unprompted teacher (alpha).
        fd_weight: Weight of the feature loss (beta).
        reg_weight: Weight of the prompt regulariser (gamma).
        temperature: KD temperature.
        fd_warmup_steps: Ramp the feature loss's weight linearly from 0 to `fd_weight` over this many training
            steps (0: off, as in the paper). Opt-in, beyond the paper.
        target_norm: "none" (the paper) or "layer": standardise each teacher stage feature over its channels at
            every position (a LayerNorm without affine parameters) before the feature loss. Opt-in, beyond the
            paper: stages of very different scales then weigh alike.
    """

    kd_weight: float = _option(1.0, NON_NEGATIVE)
    fd_weight: float = _option(1.0, NON_NEGATIVE)
    reg_weight: float = _option(1.0, NON_NEGATIVE)
    temperature: float = _option(1.0, POSITIVE)
    fd_warmup_steps: int = _option(0, NON_NEGATIVE)
    target_norm: TargetNorm = _option("none")


@dataclass(frozen=True)
class AttentionOptions(OptionGroup):
    """The region-aware attention (RAA) on the student's stages.

    Attributes:
        num_queries: Region tokens over all stages (a square number per stage).
        dim: Attention width of the RAA.
        heads: Attention heads of the RAA.
        use_raa: False skips the attention (aligners then see each stage's region tokens alone): an ablation.
    """

    num_queries: int = _option(64, POSITIVE)
    dim: int = _option(512, POSITIVE)
    heads: int = _option(8, POSITIVE)
    use_raa: bool = _option(True)


@dataclass(frozen=True)
class PromptOptions(OptionGroup):
    """The adaptive feedback prompts inside the frozen teacher.

    Attributes:
        afp_stages: Teacher stage positions (0-based) that get a prompt; None = all, [] = no prompts.
        use_feedback: Fuse the previous step's feedback into the prompts.
        se_mode: Squeeze-excitation in the prompts: "bias" (reference) or "gate" (standard).
    """

    afp_stages: Sequence[int] | None = _option(None)
    use_feedback: bool = _option(True)
    se_mode: SeMode = _option("bias")


@dataclass(frozen=True)
class StageOptions(OptionGroup):
    """Which features are distilled, overriding what stage discovery finds.

    Attributes:
        teacher_stages: Teacher feature indices overriding the defaults.
        student_stages: Student feature indices overriding the defaults.
        teacher_form: "map" or "tokens" overriding how teacher features are treated.
        student_form: "map" or "tokens" overriding how student features are treated.
    """

    teacher_stages: Sequence[int] | None = _option(None)
    student_stages: Sequence[int] | None = _option(None)
    teacher_form: StageForm | None = _option(None)
    student_form: StageForm | None = _option(None)


@dataclass(frozen=True)
class FaithfulnessOptions(OptionGroup):
    """Where fofakd departs from the authors' code (docs/faithfulness.md): a preset, and each choice on its own.

    Attributes:
        preset: "fofakd" (fofakd's choices below) or "reference": every choice set to the authors'. Choices given
            explicitly override the preset; None takes the preset's.
        pos_embed: RAA positional encoding: "fixed", "reference" (the authors' batch-indexed one) or "none".
        init: "fofakd" (Kaiming / trunc-normal weights, zero biases everywhere) or "reference" (the authors': RAA,
            fusion and prompt blocks keep PyTorch's default initialisation; aligners as "fofakd").
        token_drop: Token features of a model with a class token: "prefix" drops the prefix tokens, "last" keeps
            the class token as grid cell 0 and drops the last patch token (the authors').
        prompt_reshape: "transpose" lays token stage inputs on their grid and back correctly; "reference" holds out
            the last token and turns the prompted map back into tokens without the transpose (the authors' bug).
        feedback_order: The feedback aligner's order: "project_first" (BN, 1x1 conv, resize) or "resize_first"
            (the authors').
    """

    preset: Preset = _option("fofakd")
    pos_embed: PosEmbed | None = _option(None)
    init: InitMode | None = _option(None)
    token_drop: TokenDrop | None = _option(None)
    prompt_reshape: PromptReshape | None = _option(None)
    feedback_order: FeedbackOrder | None = _option(None)

    def resolved(self) -> "FaithfulnessOptions":
        """Every choice the preset leaves to it filled in with the preset's value."""
        return dataclasses.replace(self, **{k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None})


# Each preset's value of the choices where fofakd departs from the authors' code.
PRESETS: dict[str, dict[str, str]] = {
    "fofakd": {"pos_embed": "fixed", "init": "fofakd", "token_drop": "prefix", "prompt_reshape": "transpose",
               "feedback_order": "project_first"},
    "reference": {"pos_embed": "reference", "init": "reference", "token_drop": "last", "prompt_reshape": "reference",
                  "feedback_order": "resize_first"},
}
GROUPS: tuple[type[OptionGroup], ...] = (AttentionOptions, PromptOptions, LossOptions, StageOptions,
                                          FaithfulnessOptions)
