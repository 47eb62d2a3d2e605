"""A user's own images: `train/` and `val/` class folders (and optionally `test/`), read by workers."""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import DataLoader, DistributedSampler, Subset, default_collate
from torchvision.datasets import ImageFolder

from ..errors import FofakdError
from .bundle import DataBundle, mixup_hooks
from .datasets import dataset_stats
from .loader import drops_last_batch, epoch_seed


def load_rgb(path: str) -> Image.Image | None:
    """An image converted to RGB (grey-scale, palette, RGBA, 16-bit and float included), or None with a warning
    when the file is corrupt or truncated: one bad file should not end a long run, and the warning names it so it
    can be fixed."""
    try:
        with Image.open(path) as image:
            return to_8bit(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        # One plain line on stderr (workers included), not a Python warning with its source line.
        print(f"fofakd: warning: skipping unreadable image '{path}' ({err}).", file=sys.stderr, flush=True)
        return None


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit integer or a float image scaled to 8 bits (Pillow's own conversion clips such images to
    white or black). Integer images are scaled by their type's range (16 bits unless a value needs more); float
    images must lie in [0, 1] (scaled by 255) or [0, 255]."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not np.isfinite(values).all() or low < 0 or high > 255:
            raise ValueError(f"float pixels from {low:g} to {high:g}; fofakd reads float images in [0, 1] or [0, 255]")
        scale = 255.0 if high <= 1.0 else 1.0
    else:
        scale = 255.0 / (65535.0 if values.max(initial=0) <= 65535 else 4294967295.0)
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))


class SkippingImageFolder(ImageFolder):
    """ImageFolder whose unreadable images come out as None (dropped by `collate_skipping`)."""

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        image = self.loader(path)
        if image is None:
            return None
        return (self.transform(image) if self.transform else image), target


def collate_skipping(batch: list) -> Any:
    kept = [item for item in batch if item is not None]
    if not kept:
        return torch.empty(0, 3, 1, 1), torch.empty(0, dtype=torch.long)
    return default_collate(kept)


def _image_folder(root: Path, transform: Any) -> ImageFolder:
    if not root.is_dir():
        raise FofakdError(f"image folder '{root}' does not exist; pass --data-dir with train/ and val/ subfolders.")
    empty = [d.name for d in sorted(root.iterdir()) if d.is_dir() and not any(f.is_file() for f in d.rglob("*"))]
    if empty:
        raise FofakdError(f"class folder '{root / empty[0]}' is empty; add images to it or remove it.")
    try:
        folder = SkippingImageFolder(str(root), transform=transform, loader=load_rgb)
    except (FileNotFoundError, RuntimeError) as err:
        raise FofakdError(f"image folder '{root}' holds no images in class subfolders ({err}); add images.") from None
    if len(folder.classes) < 2:
        raise FofakdError(f"image folder '{root}' has one class folder ('{folder.classes[0]}'); a classifier needs "
                          "at least two, one subfolder per class.")
    _check_each_class_reads(folder)
    return folder


def _check_each_class_reads(folder: ImageFolder) -> None:
    """Refuse a class none of whose images can be read: it would silently never be trained or scored. Stops at
    each class's first readable image, so a healthy folder costs one image per class."""
    by_class: dict[int, list[str]] = {}
    for path, target in folder.samples:
        by_class.setdefault(target, []).append(path)
    for target, paths in by_class.items():
        for path in paths:
            try:
                with Image.open(path) as image:
                    to_8bit(image).load()
                break
            except (OSError, SyntaxError, ValueError):
                continue
        else:
            raise FofakdError(f"class folder '{Path(folder.root) / folder.classes[target]}' has no readable image "
                              f"(all {len(paths)} failed to open); fix or replace its images, or remove the folder.")


def _eval_split(root: Path, transform: Any) -> tuple[ImageFolder, str]:
    """The folder's test/ split, or val/ when there is no test/ (and which one it is)."""
    if (root / "test").is_dir():
        return _image_folder(root / "test", transform), "test"
    return _image_folder(root / "val", transform), "val"


def eval_transform(cfg: Any) -> tuple[Any, int, tuple[float, ...], tuple[float, ...]]:
    img_size = cfg.img_size or 224
    mean, std = dataset_stats("imagefolder")
    return create_transform(img_size, is_training=False, mean=mean, std=std), img_size, mean, std


def loader(dataset: Any, cfg: Any, batch_size: int, shuffle: bool, classes: int, rank: int = 0,
            world_size: int = 1, device: torch.device | str = "cpu") -> "FolderLoader":
    sampler = DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=cfg.seed) if world_size > 1 else None
    generator = torch.Generator().manual_seed(cfg.seed)
    per_rank = len(sampler) if sampler is not None else len(dataset)
    batches = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                         num_workers=cfg.workers, generator=generator, collate_fn=collate_skipping,
                         pin_memory=torch.device(device).type == "cuda",
                         drop_last=shuffle and drops_last_batch(per_rank, batch_size))
    # Random erasing already ran in the transform; only mixup and cutmix work on whole batches.
    return FolderLoader(batches, device, list(mixup_hooks(cfg, classes)) if shuffle else None, cfg.seed, rank)


class FolderLoader:
    """A DataLoader whose batches are moved to `device` and passed through the batch hooks (mixup, cutmix)."""

    def __init__(self, loader: DataLoader, device: torch.device | str, hooks: list | None = None, seed: int = 0,
                 rank: int = 0):
        self.loader, self.device, self.hooks = loader, torch.device(device), hooks or []
        self.sampler, self.generator = loader.sampler, loader.generator
        self.seed, self.rank = seed, rank

    def set_epoch(self, epoch: int) -> None:
        """Make the epoch's batches depend only on the seed and the epoch, so that a resumed run repeats them."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 1000 + epoch)  # the shuffle order and the workers' base seeds
        if self.loader.num_workers == 0:
            # Without workers, timm's crops and erasing draw from this process's Python and numpy generators,
            # which nothing else seeds (workers seed their own from the base seed).
            seed = epoch_seed(self.seed, epoch, self.rank)
            random.seed(seed)
            np.random.seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, targets in self.loader:
            images = images.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            if len(images):
                for hook in self.hooks:
                    images, targets = hook(images, targets)
            yield images, targets


def _check_data_dir(cfg: Any) -> Path:
    if cfg.data_dir is None:
        raise FofakdError("--data imagefolder needs --data-dir pointing at a folder with train/ and val/ subfolders.")
    return Path(cfg.data_dir)


def train_transform(cfg: Any, img_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """timm's training transform for image files: random-resized crop, flip, RandAugment, random erasing."""
    return create_transform(img_size, is_training=True, hflip=cfg.hflip, mean=mean, std=std,
                            scale=(cfg.rrc_scale or 0.08, 1.0),
                            auto_augment=f"rand-m{cfg.randaugment}-mstd0.5" if cfg.randaugment else None,
                            re_prob=cfg.reprob)


def file_bundle(cfg: Any, train: Any, val: Any, test: Any, names: tuple[str, ...], test_split: str, img_size: int,
                mean: tuple[float, ...], std: tuple[float, ...], rank: int, world_size: int,
                device: torch.device | str) -> DataBundle:
    """Loaders over map-style data sets of decoded image files (image folders, Hugging Face data sets), their
    subsets applied."""
    train, val, test = (Subset(d, range(min(n, len(d)))) if n else d
                        for d, n in ((train, cfg.train_subset), (val, cfg.val_subset), (test, cfg.test_subset)))
    if cfg.batch_size > len(train):
        raise FofakdError(
            f"batch size {cfg.batch_size} is larger than the {len(train)} training images; lower --batch-size."
        )
    common = dict(cfg=cfg, classes=len(names), rank=rank, world_size=world_size, device=device)
    return DataBundle(
        train=loader(train, batch_size=cfg.batch_size, shuffle=True, **common),
        val=loader(val, batch_size=cfg.eval_batch_size, shuffle=False, **common),
        test=loader(test, batch_size=cfg.eval_batch_size, shuffle=False, **common), num_classes=len(names),
        in_chans=3, img_size=img_size, mean=mean, std=std, train_size=len(train),
        mixup=bool(cfg.mixup or cfg.cutmix), class_names=names, test_split=test_split,
    )


def build_folder_data(cfg: Any, rank: int, world_size: int, device: torch.device | str = "cpu"):
    root = _check_data_dir(cfg)
    eval_tf, img_size, mean, std = eval_transform(cfg)
    train = _image_folder(root / "train", train_transform(cfg, img_size, mean, std))
    val = _image_folder(root / "val", eval_tf)
    test, test_split = _eval_split(root, eval_tf)
    if val.classes != train.classes or test.classes != train.classes:
        raise FofakdError(f"the class folders of '{root}' differ between train/ and val/ (or test/); give every "
                          "split the same class subfolders.")
    return file_bundle(cfg, train, val, test, tuple(train.classes), test_split, img_size, mean, std, rank, world_size,
                       device)


def build_folder_eval_data(cfg: Any):
    """Only the folder's test/ (or val/) split."""
    root = _check_data_dir(cfg)
    eval_tf, img_size, mean, std = eval_transform(cfg)
    test, test_split = _eval_split(root, eval_tf)
    names = tuple(test.classes)
    if cfg.test_subset:
        test = Subset(test, range(min(cfg.test_subset, len(test))))
    return DataBundle(train=None, val=None, test=loader(test, cfg, cfg.eval_batch_size, False, len(names)),
                      num_classes=len(names), in_chans=3, img_size=img_size, mean=mean, std=std, train_size=0,
                      mixup=False, class_names=names, test_split=test_split)
