import gzip
import struct

import numpy as np
import pytest
import torch

from fofakd.data import load_fashion_mnist
from fofakd.errors import FofakdError


def _write_idx(folder, prefix, images, labels):
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_reads_idx_files_from_a_folder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([4, 0, 9], dtype=np.uint8)
    _write_idx(tmp_path, "t10k", images, labels)
    x, y = load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(x[1, 0], torch.from_numpy(images[1]))
    assert y.tolist() == [4, 0, 9]


def test_unknown_split_is_named():
    with pytest.raises(FofakdError, match="split 'val'"):
        load_fashion_mnist("val")
