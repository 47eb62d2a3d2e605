"""Turn a run's data options into loaders and the facts models need (classes, channels, size)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from timm.data.random_erasing import RandomErasing

from ..errors import FofakdError
from .augment import AugmentConfig
from .datasets import TensorSplit, check_dataset_name, dataset_stats, load_tensor_split


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


def carve_validation(train: TensorSplit, fraction: float, seed: int) -> tuple[TensorSplit, TensorSplit | None]:
    """Split a seeded random `fraction` of the training split off as validation data."""
    if fraction <= 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    count = max(1, int(round(len(train) * fraction)))
    return train.subset(order[count:]), train.subset(order[:count])


def _first(split: TensorSplit | None, count: int | None) -> TensorSplit | None:
    if split is None or count is None:
        return split
    return split.subset(torch.arange(min(count, len(split))))


def build_data(cfg: Any, rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu") -> DataBundle:
    """Loaders for `cfg` (a RunConfig or anything with the same fields)."""
    from .loader import TensorLoader

    check_dataset_name(cfg.data)
    if cfg.data == "imagefolder":
        from .folder import build_folder_data

        return build_folder_data(cfg, rank, world_size, device)
    full_train = load_tensor_split(cfg.data, "train", cfg.data_dir)
    test = load_tensor_split(cfg.data, "test", cfg.data_dir)
    train, val = carve_validation(full_train, cfg.val_fraction, cfg.seed)
    train, val, test = _first(train, cfg.train_subset), _first(val, cfg.val_subset), _first(test, cfg.test_subset)
    if cfg.batch_size > len(train):
        raise FofakdError(
            f"batch size {cfg.batch_size} is larger than the {len(train)} training images; lower --batch-size."
        )
    num_classes = int(full_train.labels.max()) + 1
    mean, std = dataset_stats(cfg.data)
    img_size = cfg.img_size or full_train.images.shape[-1]
    augment = AugmentConfig.from_config(cfg)
    hooks = list(_batch_hooks(cfg, num_classes, device))
    common = dict(mean=mean, std=std, img_size=img_size, seed=cfg.seed, rank=rank, world_size=world_size,
                  device=device)
    return DataBundle(
        train=TensorLoader(train, cfg.batch_size, train=True, augment=augment, after_normalise=hooks, **common),
        val=TensorLoader(val, cfg.eval_batch_size, train=False, **common) if val is not None else None,
        test=TensorLoader(test, cfg.eval_batch_size, train=False, **common),
        num_classes=num_classes,
        in_chans=full_train.images.shape[1],
        img_size=img_size,
        mean=mean,
        std=std,
        train_size=len(train),
        mixup=bool(cfg.mixup or cfg.cutmix),
    )


def _batch_hooks(cfg: Any, num_classes: int, device: torch.device | str) -> Iterable:
    if cfg.reprob:
        erasing = RandomErasing(probability=cfg.reprob, mode="pixel", device=str(device))
        yield lambda x, y: (erasing(x), y)
    yield from mixup_hooks(cfg, num_classes)


def mixup_hooks(cfg: Any, num_classes: int) -> Iterable:
    """timm's mixup / cutmix as a batch hook, when the recipe asks for it."""
    if cfg.mixup or cfg.cutmix:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                      num_classes=num_classes)
        # timm's mixup pairs samples and needs an even batch; an odd last batch gets smoothed one-hot targets.
        yield lambda x, y: mixup(x, y) if len(x) % 2 == 0 else (x, mixup_target(y, num_classes, 1.0, cfg.smoothing))
