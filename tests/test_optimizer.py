"""The engine's optimiser: fused kernels where torch has them, the same training as the for-loop."""
import pytest
import torch
from torch import nn
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from fofakd.classification.config import build_config
from fofakd.engine.optim import build_optimizer

pytestmark = pytest.mark.skipif("cpu" not in _get_fused_kernels_supported_devices(),
                                reason="this torch has no fused optimiser kernels on the CPU (torch < 2.4)")


def _model() -> nn.Module:
    torch.manual_seed(0)
    # No conv bias before the BatchNorm: its gradient is zero up to rounding, which Adam scales up to +-lr, so the
    # two implementations' rounding would decide its sign.
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 5))


def _train(opt: str, fused: bool, steps: int = 5) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    model = _model()
    cfg = build_config({"model": "resnet10t", "opt": opt, "lr": 0.05, "weight_decay": 0.05, "fused_optimizer": fused})
    optimizer = build_optimizer(cfg, model)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)
        optimizer.zero_grad(set_to_none=True)
        # The last layer gets no gradient on the first step, as FOFA's fusion blocks (no feedback yet).
        features = model[:-1](x)
        logits = model[-1](features) if step else features[:, :5]
        nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
    return optimizer, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("opt", ["adamw", "adam"])
def test_fused_step_trains_like_the_for_loop(opt):
    fused, fused_weights = _train(opt, fused=True)
    loop, loop_weights = _train(opt, fused=False)
    assert all(group["fused"] for group in fused.param_groups)
    assert not any(group.get("fused") for group in loop.param_groups)
    # Both are the same optimiser, timm's parameter groups included (no weight decay on norms and biases).
    assert [g["weight_decay"] for g in fused.param_groups] == [g["weight_decay"] for g in loop.param_groups] != [0.0]
    initial = [p.detach() for p in _model().parameters()]
    for a, b, start in zip(fused_weights, loop_weights, initial):
        assert not torch.equal(a, start)  # the weights moved
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt", ["lamb", "sgd", "momentum"])
def test_other_optimisers_are_built_as_timm_builds_them(opt):
    optimizer, _ = _train(opt, fused=True)
    assert not any(group.get("fused") for group in optimizer.param_groups)
