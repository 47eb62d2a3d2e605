"""The options of `fofakd train` and `fofakd distill` (image classification), and what can be checked of them before
torch loads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import config as engine_config
from ..engine.config import TrainingConfig, option
from ..errors import FofakdError
from ..options import FRACTION, NON_NEGATIVE, POSITIVE, PROBABILITY, Range


@dataclass
class ClassificationConfig(TrainingConfig):
    """Every option of `fofakd train` and `fofakd distill` (image classification)."""

    # data
    data: str = option("fashion-mnist", "data set: fashion-mnist, cifar10, cifar100, imagefolder, or hfds/NAME (a "
                                      "Hugging Face data set, through timm)",
                     choices=("fashion-mnist", "cifar10", "cifar100", "imagefolder", "hfds/"))
    data_dir: str | None = option(None, "where the data set lives (default: its standard location)")
    img_size: int | None = option(None, "input size models see (default: the data's own size)", bounds=POSITIVE)
    val_fraction: float = option(0.1, "fraction of the training split held out for validation (0: none)",
                                bounds=FRACTION)
    train_subset: int | None = option(None, "use only the first N training images", bounds=POSITIVE)
    val_subset: int | None = option(None, "use only the first N validation images", bounds=POSITIVE)
    test_subset: int | None = option(None, "use only the first N test images", bounds=POSITIVE)
    # augmentation
    smoothing: float = option(0.1, "label smoothing", bounds=FRACTION)
    crop_padding: int = option(2, "random-crop padding in pixels for in-memory data (0: no crop)", bounds=NON_NEGATIVE)
    rrc_scale: float | None = option(None, "random-resized crop with this smallest area fraction (e.g. 0.08) instead "
                                         "of the padded crop; image folders always use it (default 0.08)",
                                   bounds=Range(0, 1, False, True))
    randaugment: int | None = option(None, "RandAugment magnitude (e.g. 9); off by default", bounds=NON_NEGATIVE)
    reprob: float = option(0.0, "random-erasing probability", bounds=PROBABILITY)
    mixup: float = option(0.0, "mixup alpha (0: off)", bounds=NON_NEGATIVE)
    cutmix: float = option(0.0, "cutmix alpha (0: off)", bounds=NON_NEGATIVE)


def check_run(cfg: ClassificationConfig, command: str) -> None:
    """What can be checked before torch loads: the models are named, a teacher's weights exist, and the method and
    its options are among the built-in ones (`fofakd.method_validation`)."""
    check_models(cfg, command)
    if cfg.tracker is not None:
        import importlib.util

        if importlib.util.find_spec(cfg.tracker) is None:
            raise FofakdError(f"--tracker {cfg.tracker} needs the {cfg.tracker} package; install it with pip install "
                              f"'fofakd[trackers]' (or pip install {cfg.tracker}).")
    if command != "train":
        from ..method_validation import check_method, load_method_options

        check_method(cfg.method, cfg.method_options, load_method_options())


def check_models(cfg: ClassificationConfig, command: str) -> None:
    """The models are named, and a teacher's weights exist and say (or the flags say) which model they are."""
    from ..models.spec_file import checkpoint_spec

    if command == "train":
        if not cfg.model and cfg.student and cfg.resume:
            raise FofakdError(f"'{cfg.out}' holds a distill run; continue it with `fofakd distill {cfg.out} --resume`.")
        if not cfg.model:
            raise FofakdError(f"fofakd {command} needs --model NAME (a timm model name).")
        return
    if not cfg.student and cfg.model and cfg.resume:
        raise FofakdError(f"'{cfg.out}' holds a train run; continue it with `fofakd train {cfg.out} --resume`.")
    if not cfg.student:
        raise FofakdError(f"fofakd {command} needs --student NAME (a timm model name).")
    source = Path(cfg.teacher_checkpoint) if cfg.teacher_checkpoint else None
    if source is not None and not source.exists():
        raise FofakdError(f"teacher checkpoint '{source}' does not exist; check the path (a weights file or a "
                          "fofakd train run directory).")
    if source is not None and source.suffix == ".pt" and source.parent.name == "checkpoints" and not cfg.teacher:
        raise FofakdError(f"'{source}' is a training checkpoint; pass its run directory '{source.parent.parent}' "
                          "as --teacher-checkpoint (a finished run), or name the model with --teacher.")
    if source is not None and source.is_dir() and not (source / "student.safetensors").is_file() \
            and (source / "checkpoints").is_dir():
        raise FofakdError(f"teacher run '{source}' has not finished (no student.safetensors); finish it with "
                          f"`fofakd train {source} --resume`, or pass a finished run.")
    if not cfg.teacher and not (source is not None and checkpoint_spec(source)):
        raise FofakdError(f"fofakd {command} needs --teacher NAME, or --teacher-checkpoint pointing at a fofakd run "
                          "or export that names its model.")
    if source is None and not cfg.pretrained:
        raise FofakdError("the teacher needs weights: pass --teacher-checkpoint (a file or a fofakd train run), "
                          "or --pretrained to download timm's.")


def build_config(overrides: dict[str, Any], config_file: str | Path | None = None) -> ClassificationConfig:
    """A classification run's config: defaults, then the YAML file, then `overrides`."""
    return engine_config.build_config(overrides, config_file, schema=ClassificationConfig)
