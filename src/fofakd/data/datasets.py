"""Data sets by name: small ones as uint8 tensors in memory, image folders from disk."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import FofakdError
from .cache import default_root
from .fashion_mnist import load_fashion_mnist

TENSOR_DATASETS = ("fashion-mnist", "cifar10", "cifar100")
DATASETS = (*TENSOR_DATASETS, "imagefolder")

# Per-channel mean and std of each data set's training images (in [0, 1]).
_STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's, as timm uses
}


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


@dataclass
class TensorSplit:
    """Images (N, C, H, W) uint8, labels (N,) int64 and the class names of one split."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> "TensorSplit":
        return TensorSplit(self.images[indices], self.labels[indices], self.classes)


def dataset_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) used to normalise the data set."""
    return _STATS[name]


def check_dataset_name(name: str) -> None:
    if name not in DATASETS and not (name.startswith("hfds/") and len(name) > len("hfds/")):
        raise FofakdError(f"data set '{name}' is not known; use one of {', '.join(DATASETS)}, or hfds/NAME.")


def load_tensor_split(name: str, split: str, data_dir: str | Path | None) -> TensorSplit:
    """The official 'train' or 'test' split of an in-memory data set."""
    check_dataset_name(name)
    if name == "fashion-mnist":
        return TensorSplit(*load_fashion_mnist(split, data_dir), FASHION_MNIST_CLASSES)
    from torchvision.datasets import CIFAR10, CIFAR100

    root = Path(data_dir) if data_dir is not None else default_root()
    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        data = cls(str(root), train=split == "train", download=not _cifar_present(root, name))
    except Exception as err:  # noqa: BLE001 -- any network or format failure gets the same advice
        raise FofakdError(
            f"{name} was not found under '{root}' and could not be downloaded ({err}); put torchvision's "
            f"extracted {name} folder there or pass --data-dir."
        ) from None
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return TensorSplit(images, torch.tensor(data.targets, dtype=torch.long), tuple(data.classes))


def _cifar_present(root: Path, name: str) -> bool:
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    return (root / folder).is_dir()
