"""What a task's data hands the engine: loaders and the facts models follow, and timm's batch mixing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from timm.data import Mixup
from timm.data.mixup import mixup_target


@dataclass
class DataBundle:
    """Loaders and the facts about the data that models follow."""

    train: Any
    val: Any
    test: Any
    num_classes: int
    in_chans: int
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    mixup: bool
    class_names: tuple[str, ...] = ()
    test_split: str = "test"  # what `test` holds: "val" for an image folder without test/


def mixup_hooks(cfg: Any, num_classes: int) -> Iterable:
    """timm's mixup / cutmix as a batch hook, when the recipe asks for it."""
    if cfg.mixup or cfg.cutmix:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                      num_classes=num_classes)
        # timm's mixup pairs samples and needs an even batch; an odd last batch gets smoothed one-hot targets.
        yield lambda x, y: mixup(x, y) if len(x) % 2 == 0 else (x, mixup_target(y, num_classes, 1.0, cfg.smoothing))
