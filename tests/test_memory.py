"""A run's peak memory counts from its own start, not from the process's."""
import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, torch
from fofakd.engine.memory import peak_memory_mb, reset_peak_memory
cpu = torch.device("cpu")
block = torch.ones(256 * 2**20 // 4)  # 256 MiB, every page touched
before = peak_memory_mb(cpu)
del block
reset_peak_memory(cpu)
after_reset = peak_memory_mb(cpu)
block = torch.ones(128 * 2**20 // 4)
print(json.dumps([before, after_reset, peak_memory_mb(cpu)]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resident-set peak is read from /proc")
def test_the_cpu_peak_follows_an_allocation_and_resets():
    # A fresh interpreter: in a long-lived test worker, freed pages stay resident and a new tensor reuses them.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    before, after_reset, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_reset < before - 200  # the freed 256 MiB no longer count
    assert after > after_reset + 100  # the new 128 MiB do
