"""Training checkpoints: written atomically, read without unpickling arbitrary objects."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FofakdError
from ..files import write_atomic
from ..models.checkpoint import safe_torch_load
from .faults import fault_point


def save_atomic(obj: Any, path: str | Path) -> None:
    """Write `obj` to a temporary file in the same folder, fsync, then rename it over `path`.

    A crash or a full disk at any point leaves the previous `path` as it was.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            fault_point("kill-in-save")
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())

    kept = ("the previous checkpoint is intact, so the run can continue with --resume" if path.exists()
            else "no checkpoint was written yet, so the run starts again with the same command")
    write_atomic(path, write, kept=kept)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, read with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise FofakdError(f"checkpoint '{path}' does not exist; check the path or start without --resume.")
    state = safe_torch_load(path)
    if not isinstance(state, dict):
        raise FofakdError(f"checkpoint '{path}' is not a fofakd training checkpoint; pass a run's checkpoints/last.pt.")
    return state


def rng_state() -> dict[str, Any]:
    """Every random generator a run draws from, in a weights-only-loadable form."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
