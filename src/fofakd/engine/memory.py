"""Peak memory of one run: the GPU's allocator peak, or on Linux CPUs the process's resident-set high-water mark."""
from __future__ import annotations

from pathlib import Path

import torch

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring a run's peak from now (the resident-set peak is reset by writing 5 to clear_refs)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:  # not Linux, or not allowed: the peak then counts from the process's start
        pass


def peak_memory_mb(device: torch.device) -> float | None:
    """MiB: the most the run's tensors held on a GPU, or the most resident memory this process held on a CPU since
    `reset_peak_memory` (None where neither can be read)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        line = next(line for line in _STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024
