"""The bias-mode window-sum shortcut equals the convolutions it replaces, forward and backward (fp32)."""
import copy

import pytest
import torch

from fofakd.features.stages import StageInfo
from fofakd.modules import window_sums
from fofakd.modules.prompts import AdaptiveFeedbackPrompt, FusionBlock, PromptBlock


SIZES = [(1, 1), (2, 2), (7, 7), (8, 8), (56, 56), (5, 9), (12, 7)]  # odd, even, tiny, large, non-square


def _randomise(module, seed):
    """Weights ~ N(0, 1/fan_in) (pre-activations of order 1, so the sigmoid gate is not flat), biases and beta
    ~ N(0, 0.3^2) (non-zero, as PyTorch's default init leaves them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            scale = p[0].numel() ** -0.5 if p.ndim > 1 else 0.3
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def _forward_and_grads(module, inputs, use_window_sums):
    for m in module.modules():
        if hasattr(m, "use_window_sums"):
            m.use_window_sums = use_window_sums
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    module.zero_grad()
    out = module(*inputs)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)  # a loss that weighs every output differently
    (out * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return out.detach(), grads, [t.grad.clone() for t in inputs]


def _relative_error(module, inputs, use_window_sums):
    """Largest relative error of the output, every parameter gradient and the input gradients in fp32, against the
    convolutions evaluated in fp64 (the formulation's exact value)."""
    reference = copy.deepcopy(module).double()
    ref_out, ref_grads, ref_in = _forward_and_grads(reference, [t.double() for t in inputs], False)
    out, grads, in_grads = _forward_and_grads(module, inputs, use_window_sums)
    assert out.shape == ref_out.shape and grads.keys() == ref_grads.keys()
    # Relative to each tensor's largest entry, with a floor of 1e-3 of the largest parameter gradient: a gradient
    # a thousand times smaller than the rest (a squeeze-excitation unit whose relu sits near 0) is compared absolutely.
    floor = 1e-3 * max(g.abs().max().item() for g in ref_grads.values())

    def rel(a, b):
        return ((a.double() - b).abs().max() / max(b.abs().max().item(), floor)).item()

    errors = [rel(out, ref_out)] + [rel(grads[k], ref_grads[k]) for k in ref_grads]
    return max(errors + [rel(a, b) for a, b in zip(in_grads, ref_in)])


def assert_shortcut_exact(module, inputs):
    """The shortcut in fp32 is within 1e-5 of the exact value, or at worst twice as far as the fp32 convolutions
    themselves are (bias gradients summed over B*H*W pixels carry about 1e-5 of fp32 rounding either way)."""
    shortcut = _relative_error(module, inputs, True)
    convolutions = _relative_error(module, inputs, False)
    assert shortcut <= max(1e-5, 2 * convolutions), (shortcut, convolutions)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [FusionBlock, PromptBlock])
def test_block_shortcut_equals_convolutions(block, size, seed):
    channels = 32  # a squeeze-excitation of 2 hidden units (16 channels give 1, whose relu may sit at 0)
    module = block(channels, "bias")
    _randomise(module, seed)
    in_channels = 2 * channels if block is FusionBlock else channels
    x = torch.randn(3, in_channels, *size, generator=torch.Generator().manual_seed(100 + seed))
    assert_shortcut_exact(module, [x])


@pytest.mark.parametrize("block", [FusionBlock, PromptBlock])
def test_large_maps_take_the_separable_sums(block):
    """Above `DENSE_MASK_PIXELS` the sums are two products with the row and column masks; they are exact too."""
    size = (72, 64)
    assert size[0] * size[1] > window_sums.DENSE_MASK_PIXELS
    module = block(32, "bias")
    _randomise(module, 1)  # seed 0 leaves both of the fusion's squeeze-excitation units at relu 0 on this input,
    # which makes its output independent of x and the comparison blind to the sums
    x = torch.randn(2, 64 if block is FusionBlock else 32, *size, generator=torch.Generator().manual_seed(5))
    assert_shortcut_exact(module, [x])


def test_fusion_of_two_inputs_is_fusion_of_their_concatenation():
    module = FusionBlock(32, "bias")
    _randomise(module, 1)
    g = torch.Generator().manual_seed(6)
    x, feedback = torch.randn(3, 32, 6, 6, generator=g), torch.randn(3, 32, 6, 6, generator=g)
    torch.testing.assert_close(module(x, feedback), module(torch.cat([x, feedback], dim=1)), rtol=0, atol=0)
    module.use_window_sums = False
    torch.testing.assert_close(module(x, feedback), module(torch.cat([x, feedback], dim=1)), rtol=0, atol=0)


def _stage(channels, grid, in_channels, in_grid):
    return StageInfo(index=0, module="m", start_module="m", channels=channels, grid=grid, form="map",
                     input_layout="NCHW", input_channels=in_channels, input_grid=in_grid)


class _PromptStep(torch.nn.Module):
    """One prompt application with a given feedback (or none): what autograd sees inside the teacher."""

    def __init__(self, prompt):
        super().__init__()
        self.prompt = prompt

    def forward(self, x, feedback=None):
        if feedback is not None:
            self.prompt.feedback = feedback
        return self.prompt(x)


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (8, 8), (6, 10)])
@pytest.mark.parametrize("with_feedback", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_whole_prompt_shortcut_equals_convolutions(size, with_feedback, seed):
    prompt = AdaptiveFeedbackPrompt(_stage(48, size, 32, size), "bias").train()
    _randomise(prompt, seed)
    g = torch.Generator().manual_seed(7 + seed)
    x = torch.randn(4, 32, *size, generator=g)
    inputs = [x]
    if with_feedback:
        prompt.feedback = torch.randn(4, 48, *size, generator=g)
    assert_shortcut_exact(_PromptStep(prompt), inputs)


def test_an_off_by_one_border_strip_is_caught(monkeypatch):
    module = FusionBlock(32, "bias")
    _randomise(module, 0)
    x = torch.randn(3, 64, 7, 7, generator=torch.Generator().manual_seed(3))
    assert_shortcut_exact(module, [x])
    right = window_sums.rectangle_masks

    def shifted(size, kernel, device, dtype):  # every rectangle one row/column too far
        masks = right(size, kernel, device, dtype)
        return torch.roll(masks, 1, dims=1)

    monkeypatch.setattr(window_sums, "rectangle_masks", shifted)
    assert _relative_error(module, [x], True) > 1e-3


@pytest.mark.parametrize("size, reachable", [(1, [2]), (2, [1, 2, 3]), (3, [0, 1, 2, 3, 4])])
def test_taps_that_read_only_padding_are_left_out(size, reachable):
    """A 5x5 kernel with padding 2 reaches a 1x1 map with its centre tap only and a 2x2 map with the inner 3x3."""
    assert list(range(5))[window_sums.reachable_offsets(size, 5)] == reachable
    block = FusionBlock(8, "bias")
    _randomise(block, 0)
    x = torch.randn(2, 16, size, size)
    before = block(x)
    outer = torch.ones(5, 5, dtype=torch.bool)
    outer[reachable[0]:reachable[-1] + 1, reachable[0]:reachable[-1] + 1] = False
    with torch.no_grad():
        block[1].weight[:, :, outer] += 1.0  # weights that only ever multiply padding
    after = block(x)
    after.sum().backward()
    assert torch.equal(before, after)
    assert block[1].weight.grad[:, :, outer].abs().sum() == 0 and block[1].weight.grad.abs().sum() > 0


def test_gate_mode_keeps_the_convolutions():
    block = PromptBlock(16, "gate")
    assert not block.use_window_sums
    x = torch.randn(2, 16, 6, 6)
    assert block(x).shape == (2, 16, 6, 6)


def test_rectangle_sums_by_hand():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)  # rows [0..3], [4..7], [8..11]
    sums = window_sums.rectangle_sums(x, 3)  # offsets -1, 0, +1 per axis
    assert sums[0, 0, 1, 1].item() == x.sum().item()
    assert sums[0, 0, 0, 1].item() == x[0, 0, :2].sum().item()  # offset -1 reads rows 0..1 (not the last)
    assert sums[0, 0, 2, 2].item() == x[0, 0, 1:, 1:].sum().item()  # offset +1 skips the first row and column
    assert window_sums.rectangle_areas(3, 4, 3, x.device, x.dtype)[0, 0].item() == 2 * 3
