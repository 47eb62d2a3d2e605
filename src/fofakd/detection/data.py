"""Detection loaders for a run: the synthetic shapes (made on first use) or a COCO-format folder."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..data.cache import default_root
from ..data.loader import drops_last_batch
from ..errors import FofakdError
from .coco import CocoDetection, collate_detection
from .config import DetectionConfig
from .synthetic import make_synthetic_coco


@dataclass
class DetectionData:
    """Loaders plus what the detectors and COCO evaluation need."""

    train: "DetectionLoader"
    val: "DetectionLoader"
    num_classes: int
    categories: list[dict[str, Any]]
    val_coco: Any
    val_image_ids: list[int]
    root: Path


class DetectionLoader:
    """A DataLoader of detection batches whose images and targets are moved to the run's device.

    Its `sampler` and `generator` are the DataLoader's, so the Trainer reseeds the shuffling per epoch as it does for
    a plain DataLoader, and a resumed run sees the batches an uninterrupted one would.
    """

    def __init__(self, loader: DataLoader, device: torch.device | str):
        self.loader, self.device = loader, torch.device(device)
        self.sampler, self.generator = loader.sampler, loader.generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
        for images, targets in self.loader:
            yield ([image.to(self.device, non_blocking=True) for image in images],
                   [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets])


def split_files(root: Path, split: str) -> tuple[Path, Path]:
    """(image folder, annotation file) of a split in either supported COCO-format layout."""
    layouts = [(root / split, root / "annotations" / f"instances_{split}.json"),
               (root / split / "images", root / split / "annotations.json")]
    for images, annotation_file in layouts:
        if images.is_dir() and annotation_file.is_file():
            return images, annotation_file
    raise FofakdError(f"'{root}' has no '{split}' split: expected {layouts[0][1].relative_to(root)} with "
                      f"{split}/, or {split}/annotations.json with {split}/images/; pass --data-dir and the split "
                      "names (--train-split, --val-split).")


def ensure_shapes(cfg: DetectionConfig, is_main: bool = True) -> Path:
    """The synthetic set's folder, written on first use (train: seed 0, val: seed 1, a quarter as many images)."""
    root = Path(cfg.data_dir) if cfg.data_dir else default_root() / f"shapes-{cfg.shapes_size}px-{cfg.shapes_images}"
    train, val = cfg.splits()
    if not is_main or all((root / s / "annotations.json").is_file() for s in (train, val)):
        return root
    for split, count, seed in ((train, cfg.shapes_images, 0), (val, max(1, cfg.shapes_images // 4), 1)):
        if (root / split / "annotations.json").is_file():
            continue
        partial = root / f".{split}.partial"  # written aside and renamed, so an interrupted write is never used
        shutil.rmtree(partial, ignore_errors=True)
        make_synthetic_coco(partial, num_images=count, size=cfg.shapes_size, seed=seed)
        shutil.rmtree(root / split, ignore_errors=True)
        partial.rename(root / split)
    return root


def first_images(dataset: CocoDetection, count: int | None) -> tuple[Any, list[int]]:
    """The first `count` images of a set (all when None) and their COCO image ids."""
    if count is None or count >= len(dataset):
        return dataset, list(dataset.ids)
    return Subset(dataset, range(count)), list(dataset.ids[:count])


def data_root(cfg: DetectionConfig, is_main: bool = True) -> Path:
    """The folder holding the run's splits (for shapes, made on first use by the main process)."""
    if cfg.data == "shapes":
        return ensure_shapes(cfg, is_main)
    if not cfg.data_dir:
        raise FofakdError("--data coco needs --data-dir, the folder that holds the COCO-format splits.")
    return Path(cfg.data_dir)


def eval_loader(dataset: Any, cfg: DetectionConfig, device: torch.device | str, rank: int = 0,
                world_size: int = 1) -> DetectionLoader:
    """In-order batches of this process's shard of an evaluation set."""
    shard = Subset(dataset, range(rank, len(dataset), world_size))
    return DetectionLoader(DataLoader(shard, cfg.eval_batch_size, shuffle=False, collate_fn=collate_detection,
                                      num_workers=cfg.workers), device)


def build_detection_data(cfg: DetectionConfig, rank: int = 0, world_size: int = 1,
                         device: torch.device | str = "cpu", barrier: Any = None) -> DetectionData:
    """Training and validation loaders of a detection run; validation is sharded over processes in order."""
    root = data_root(cfg, rank == 0)
    if barrier is not None:
        barrier()  # the main process may have just written the synthetic set
    train_name, val_name = cfg.splits()
    train_set = CocoDetection(*split_files(root, train_name), hflip=cfg.hflip)
    val_set = CocoDetection(*split_files(root, val_name))
    if train_set.category_ids != val_set.category_ids:
        raise FofakdError(f"the '{train_name}' and '{val_name}' splits list different categories; use splits of "
                          "one data set.")
    train, _ = first_images(train_set, cfg.train_subset)
    val, val_ids = first_images(val_set, cfg.val_subset)
    if cfg.batch_size > len(train):
        raise FofakdError(f"batch size {cfg.batch_size} is larger than the {len(train)} training images; lower "
                          "--batch-size.")
    common = dict(collate_fn=collate_detection, num_workers=cfg.workers,
                  pin_memory=torch.device(device).type == "cuda")
    if world_size > 1:
        sampler = DistributedSampler(train, world_size, rank, shuffle=True, seed=cfg.seed)
        drop_last = drops_last_batch(len(sampler), cfg.batch_size)
        train_loader = DataLoader(train, cfg.batch_size, sampler=sampler, drop_last=drop_last, **common)
    else:
        generator = torch.Generator().manual_seed(cfg.seed)
        drop_last = drops_last_batch(len(train), cfg.batch_size)
        train_loader = DataLoader(train, cfg.batch_size, shuffle=True, generator=generator, drop_last=drop_last,
                                  **common)
    return DetectionData(
        train=DetectionLoader(train_loader, device), val=eval_loader(val, cfg, device, rank, world_size),
        num_classes=val_set.num_classes, categories=[val_set.coco.cats[c] for c in val_set.category_ids],
        val_coco=val_set.coco, val_image_ids=val_ids, root=root,
    )
