import json

import pytest
import torch

from golden.make_golden import FIXTURE, compute_losses


def test_every_method_reproduces_its_golden_losses():
    expected = json.loads(FIXTURE.read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture was made: reductions then add in one order
    try:
        actual = compute_losses()
    finally:
        torch.set_num_threads(threads)
    assert set(actual) == set(expected), "a method was added or removed: regenerate the fixture"
    for method, steps in expected.items():
        for step, parts in enumerate(steps):
            assert set(actual[method][step]) == set(parts), (method, step)
            for name, value in parts.items():
                assert actual[method][step][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (method, step, name)
