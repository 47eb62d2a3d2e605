"""A user's own images: `train/` and `val/` class folders (and optionally `test/`), read by workers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from timm.data import create_transform
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision.datasets import ImageFolder

from ..errors import FofakdError
from .datasets import dataset_stats


def _image_folder(root: Path, transform: Any) -> ImageFolder:
    if not root.is_dir():
        raise FofakdError(f"image folder '{root}' does not exist; pass --data-dir with train/ and val/ subfolders.")
    try:
        return ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as err:
        raise FofakdError(f"image folder '{root}' holds no images in class subfolders ({err}); add images.") from None


def build_folder_data(cfg: Any, rank: int, world_size: int):
    from .build import DataBundle

    if cfg.data_dir is None:
        raise FofakdError("--data imagefolder needs --data-dir pointing at a folder with train/ and val/ subfolders.")
    root = Path(cfg.data_dir)
    img_size = cfg.img_size or 224
    mean, std = dataset_stats("imagefolder")
    train_tf = create_transform(img_size, is_training=True, hflip=cfg.hflip, mean=mean, std=std,
                                auto_augment=f"rand-m{cfg.randaugment}-mstd0.5" if cfg.randaugment else None,
                                re_prob=cfg.reprob)
    eval_tf = create_transform(img_size, is_training=False, mean=mean, std=std)
    train = _image_folder(root / "train", train_tf)
    val = _image_folder(root / "val", eval_tf)
    test = _image_folder(root / "test", eval_tf) if (root / "test").is_dir() else val
    if cfg.train_subset:
        train = Subset(train, range(min(cfg.train_subset, len(train))))
    if cfg.batch_size > len(train):
        raise FofakdError(
            f"batch size {cfg.batch_size} is larger than the {len(train)} training images; lower --batch-size."
        )

    def loader(dataset, batch_size: int, shuffle: bool) -> DataLoader:
        sampler = DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=cfg.seed) \
            if world_size > 1 else None
        generator = torch.Generator().manual_seed(cfg.seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          num_workers=cfg.workers, generator=generator, persistent_workers=False)

    classes = len(val.classes if isinstance(val, ImageFolder) else val.dataset.classes)
    return DataBundle(
        train=loader(train, cfg.batch_size, True), val=loader(val, cfg.eval_batch_size, False),
        test=loader(test, cfg.eval_batch_size, False), num_classes=classes, in_chans=3, img_size=img_size,
        mean=mean, std=std, train_size=len(train), mixup=False,
    )
