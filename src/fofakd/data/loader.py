"""Loaders: in-memory splits batched and augmented per batch; image folders through torch's DataLoader."""
from __future__ import annotations

import random
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .augment import AugmentConfig, augment_uint8, to_model_input
from .datasets import TensorSplit

BatchHook = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def drops_last_batch(samples: int, batch_size: int) -> bool:
    """Whether a training loader drops its last batch: only when it would hold one sample, which BatchNorm cannot
    train on (timm's loaders drop every short last batch; fofakd drops only this one, so no other image is lost)."""
    return batch_size > 1 and samples % batch_size == 1


def epoch_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """A seed for one epoch (and one process): the same on every run with the same seed."""
    return (seed * 1_000_003 + epoch * 10_007 + (0 if rank is None else rank + 1) * 101) % (2**31 - 1)


class TensorLoader:
    """Batches of an in-memory split.

    Training order is a permutation drawn from (seed, epoch), identical on every process, then sharded by rank
    (padded to equal shards like DistributedSampler); augmentation draws from (seed, epoch, rank). So an epoch's
    batches depend only on the seed and the epoch number, which makes resumed runs repeat them exactly.

    Args:
        split: The images and labels.
        batch_size: Batch size per process.
        mean: Normalisation mean.
        std: Normalisation std.
        img_size: Resize to this size (None keeps the stored size).
        train: Shuffle, augment, and drop a last batch of one sample (`drops_last_batch`); else keep order, keep
            every sample and shard without padding.
        augment: uint8 augmentation (training only).
        after_normalise: Hooks on the float batch and targets (random erasing, mixup), training only.
        seed: Run seed.
        rank: This process's rank.
        world_size: Number of processes.
        device: Where batches go.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        img_size: int | None,
        train: bool,
        augment: AugmentConfig | None = None,
        after_normalise: Sequence[BatchHook] = (),
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ):
        self.split, self.batch_size = split, batch_size
        self.mean, self.std, self.img_size = mean, std, img_size
        self.train, self.augment, self.after_normalise = train, augment, list(after_normalise)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.split)
        if not self.train:
            return torch.arange(n)[self.rank :: self.world_size]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        per_rank = -(-n // self.world_size)
        order = torch.cat([order, order[: per_rank * self.world_size - n]])
        return order[self.rank :: self.world_size]

    def _per_rank(self) -> int:
        n = len(self.split)
        return -(-n // self.world_size) if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        per_rank = self._per_rank()
        return -(-per_rank // self.batch_size) - (self.train and drops_last_batch(per_rank, self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = epoch_seed(self.seed, self.epoch, self.rank)
        generator = torch.Generator().manual_seed(seed)
        if self.train:
            # timm's mixup and random erasing draw from numpy's and Python's global generators.
            np.random.seed(seed)
            random.seed(seed)
        for batch in self._indices().split(self.batch_size)[: len(self)]:
            images = self.split.images[batch].to(self.device, non_blocking=True)
            labels = self.split.labels[batch].to(self.device, non_blocking=True)
            if self.train and self.augment is not None:
                images = augment_uint8(images, self.augment, generator)
            x = to_model_input(images, self.mean, self.std, self.img_size)
            if self.train:
                for hook in self.after_normalise:
                    x, labels = hook(x, labels)
            yield x, labels
