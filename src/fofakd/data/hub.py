"""Hugging Face data sets through timm's dataset factory: `--data hfds/NAME`, a name on the Hub or a local folder of
data files (parquet, arrow, image folders) that `datasets.load_dataset` reads, with `--data-dir` as its cache.

The splits are the data set's own: `train` trains; `validation` (or `val`) validates, else a seeded
`--val-fraction` of `train` is held out; `test` is scored at the end, else the validation split is (and the run
says so, as for image folders without `test/`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Subset

from ..errors import FofakdError, first_line
from .bundle import DataBundle
from .folder import eval_transform, file_bundle, loader, train_transform

PREFIX = "hfds/"
VAL_SPLITS, TEST_SPLITS = ("validation", "val"), ("test",)


def _dataset(cfg: Any, split: str, transform: Any) -> Any:
    """timm's `ImageDataset` over one split, or None when the data set has no such split."""
    from timm.data import create_dataset

    try:
        dataset = create_dataset(cfg.data, root=cfg.data_dir, split=split)
    except ImportError:
        raise FofakdError(f"--data {cfg.data} needs the datasets package; pip install 'fofakd[hub]' (or pip install "
                          "datasets).") from None
    except ValueError as err:
        if "split" in str(err).lower():
            return None
        raise FofakdError(f"could not read --data {cfg.data} ({first_line(err)}); check the name, "
                          "or the folder's data files.") from None
    except (OSError, FileNotFoundError) as err:
        raise FofakdError(f"could not read --data {cfg.data} ({first_line(err)}); check the name and "
                          "the network, or point hfds/ at a local folder of data files.") from None
    dataset.transform = transform
    return dataset


def _first_split(cfg: Any, names: tuple[str, ...], transform: Any) -> tuple[Any, str | None]:
    for name in names:
        dataset = _dataset(cfg, name, transform)
        if dataset is not None:
            return dataset, name
    return None, None


def class_names(dataset: Any) -> tuple[str, ...]:
    """The class names in class-index order, from the data set's label feature."""
    to_index = dataset.reader.class_to_idx
    return tuple(sorted(to_index, key=to_index.get)) if to_index else ()


def build_hfds_data(cfg: Any, rank: int, world_size: int, device: torch.device | str = "cpu") -> DataBundle:
    """Training, validation and test loaders of a Hugging Face data set."""
    eval_tf, img_size, mean, std = eval_transform(cfg)
    train = _dataset(cfg, "train", train_transform(cfg, img_size, mean, std))
    if train is None:
        raise FofakdError(f"--data {cfg.data} has no 'train' split; fofakd trains on a data set's train split.")
    names = class_names(train)
    if len(names) < 2:
        raise FofakdError(f"--data {cfg.data} has {len(names)} class(es) in its label feature; a classifier needs two.")
    val, _ = _first_split(cfg, VAL_SPLITS, eval_tf)
    if val is None:  # hold out a seeded fraction of train, seen through the evaluation transform
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        count = max(1, round(len(train) * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
        val, train = Subset(_dataset(cfg, "train", eval_tf), order[:count]), Subset(train, order[count:])
    test, test_split = _first_split(cfg, TEST_SPLITS, eval_tf)
    if test is None:
        test, test_split = val, "val"
    return file_bundle(cfg, train, val, test, names, test_split, img_size, mean, std, rank, world_size, device)


def build_hfds_eval_data(cfg: Any) -> DataBundle:
    """Only the test split (or the validation split when there is none)."""
    eval_tf, img_size, mean, std = eval_transform(cfg)
    test, split = _first_split(cfg, (*TEST_SPLITS, *VAL_SPLITS), eval_tf)
    if test is None:
        raise FofakdError(f"--data {cfg.data} has no test or validation split to score.")
    names = class_names(test)
    if cfg.test_subset:
        test = Subset(test, range(min(cfg.test_subset, len(test))))
    return DataBundle(train=None, val=None, test=loader(test, cfg, cfg.eval_batch_size, False, len(names)),
                      num_classes=len(names), in_chans=3, img_size=img_size, mean=mean, std=std, train_size=0,
                      mixup=False, class_names=names, test_split="test" if split == "test" else "val")
