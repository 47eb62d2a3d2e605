"""Turn a run's data options into loaders and the facts models need (classes, channels, size)."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from timm.data.random_erasing import RandomErasing

from ..errors import FofakdError
from .augment import AugmentConfig
from .bundle import DataBundle, mixup_hooks
from .datasets import TensorSplit, check_dataset_name, dataset_stats, load_tensor_split


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
    """Loaders for `cfg` (a ClassificationConfig or anything with the same fields)."""
    from .loader import TensorLoader

    check_dataset_name(cfg.data)
    if cfg.data == "imagefolder":
        from .folder import build_folder_data

        return build_folder_data(cfg, rank, world_size, device)
    if cfg.data.startswith("hfds/"):
        from .hub import build_hfds_data

        return build_hfds_data(cfg, rank, world_size, device)
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
        class_names=full_train.classes,
    )


def build_eval_data(cfg: Any) -> DataBundle:
    """Only the test split of `cfg`'s data (or an image folder's val/ when it has no test/), for eval and reports."""
    from .loader import TensorLoader

    check_dataset_name(cfg.data)
    if cfg.data == "imagefolder":
        from .folder import build_folder_eval_data

        return build_folder_eval_data(cfg)
    if cfg.data.startswith("hfds/"):
        from .hub import build_hfds_eval_data

        return build_hfds_eval_data(cfg)
    test = _first(load_tensor_split(cfg.data, "test", cfg.data_dir), cfg.test_subset)
    mean, std = dataset_stats(cfg.data)
    img_size = cfg.img_size or test.images.shape[-1]
    loader = TensorLoader(test, cfg.eval_batch_size, train=False, mean=mean, std=std, img_size=img_size, seed=0)
    return DataBundle(train=None, val=None, test=loader, num_classes=len(test.classes) or int(test.labels.max()) + 1,
                      in_chans=test.images.shape[1], img_size=img_size, mean=mean, std=std, train_size=0,
                      mixup=False, class_names=test.classes)


def _batch_hooks(cfg: Any, num_classes: int, device: torch.device | str) -> Iterable:
    if cfg.reprob:
        erasing = RandomErasing(probability=cfg.reprob, mode="pixel", device=str(device))
        yield lambda x, y: (erasing(x), y)
    yield from mixup_hooks(cfg, num_classes)
