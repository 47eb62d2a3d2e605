"""Fashion-MNIST, fofakd's built-in data set: the Debian package's files, else torchvision's download."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import FofakdError
from .cache import default_root

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with gzip.open(images_path) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(labels_path) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,).

    Looks in `root` (IDX .gz files), then the Debian package's folder, then downloads with torchvision.
    """
    if split not in _FILES:
        raise FofakdError(f"Fashion-MNIST split '{split}' is not known; use 'train' or 'test'.")
    if root is not None:
        # A folder the user named: its IDX files or torchvision's layout inside it, never a download.
        root = Path(root)
        if not root.is_dir():
            raise FofakdError(f"data directory '{root}' does not exist; check --data-dir or omit it.")
        for folder in (root, root / "FashionMNIST" / "raw"):
            paths = [folder / name for name in _FILES[split]]
            if all(p.is_file() for p in paths):
                return _read_idx(*paths)
        raise FofakdError(f"data directory '{root}' holds no Fashion-MNIST files ({', '.join(_FILES[split])}); "
                          "put them there or omit --data-dir.")
    paths = [DEBIAN_DIR / name for name in _FILES[split]]
    if all(p.is_file() for p in paths):
        return _read_idx(*paths)
    from torchvision.datasets import FashionMNIST

    target = default_root()
    raw = target / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in _FILES[split]):
        return _read_idx(*[raw / name for name in _FILES[split]])
    try:
        data = FashionMNIST(str(target), train=split == "train", download=True)
    except Exception as err:  # noqa: BLE001 -- any network or disk failure means the same advice
        raise FofakdError(
            f"Fashion-MNIST was not found ({err}); install the Debian package with "
            "'apt-get install dataset-fashion-mnist' or run once with network access."
        ) from None
    return data.data.unsqueeze(1).clone(), data.targets.clone()
