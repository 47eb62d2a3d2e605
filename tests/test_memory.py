"""A run's peak memory counts from its own start, not from the process's."""
import sys

import pytest
import torch

from fofakd.engine.memory import peak_memory_mb, reset_peak_memory

CPU = torch.device("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resident-set peak is read from /proc")
def test_the_cpu_peak_follows_an_allocation_and_resets():
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page touched
    before = peak_memory_mb(CPU)
    del block
    reset_peak_memory(CPU)
    after_reset = peak_memory_mb(CPU)
    assert after_reset < before - 48  # the 64 MiB freed no longer count
    block = torch.ones(128 * 2**20 // 4)
    assert peak_memory_mb(CPU) > after_reset + 100
    del block
