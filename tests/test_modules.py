import pytest
import torch
import torch.nn.functional as F

from fofakd.errors import FofakdError
from fofakd.features.stages import StageInfo
from fofakd.modules.aligners import RegionsToMap, RegionsToTokens, build_map_aligner
from fofakd.modules.prompts import AdaptiveFeedbackPrompt, SqueezeExcite
from fofakd.modules.raa import RegionAwareAttention, RegionPatchify


def _stage(form="map", channels=8, grid=(4, 4), in_channels=4, in_grid=(8, 8)):
    return StageInfo(index=0, module="m", start_module="m", channels=channels, grid=grid, form=form,
                     input_layout="NCHW", input_channels=in_channels, input_grid=in_grid)


def test_patchify_resizes_up_to_a_multiple_of_the_grid():
    patch = RegionPatchify(channels=3, grid=(7, 7), regions_per_side=4, dim=16)
    assert patch.patch == (2, 2) and patch.size == (8, 8) and patch.needs_resize
    assert patch(torch.randn(2, 3, 7, 7)).shape == (2, 16, 16)
    tiny = RegionPatchify(channels=3, grid=(1, 1), regions_per_side=4, dim=16)
    assert tiny(torch.randn(2, 3, 1, 1)).shape == (2, 16, 16)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grid, size", [((8, 8), None), ((7, 7), None), ((6, 10), None), ((16, 16), (12, 20))])
def test_patchify_product_equals_its_convolution(grid, size, channels_last):
    """The patch-wise matrix product is the kernel = stride convolution: output and every gradient, fp64, for maps
    and for token features laid on their grid (channels-last memory)."""
    patch = RegionPatchify(channels=5, grid=grid, regions_per_side=4, dim=12).double()
    x = torch.randn(3, 5, *(size or grid), dtype=torch.float64, requires_grad=True)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    out = patch(x.contiguous(memory_format=memory))
    expected_input = F.interpolate(x, size=patch.size, mode="bilinear" if size else "nearest") \
        if size or patch.needs_resize else x
    expected = patch.proj(expected_input).flatten(2).transpose(1, 2)
    patch.as_product = False  # the convolution itself, as the authors call it
    torch.testing.assert_close(patch(x), expected, rtol=0, atol=0)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, *patch.parameters()])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, *patch.parameters()])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_raa_shapes_and_every_query_sees_every_stage():
    raa = RegionAwareAttention([8, 16, 32, 64], [(16, 16), (8, 8), (4, 4), (2, 2)], num_queries=64, dim=32,
                               num_heads=4)
    maps = [torch.randn(2, c, g, g) for c, g in [(8, 16), (16, 8), (32, 4), (64, 2)]]
    chunks, attn = raa(maps, return_attention=True)
    assert [c.shape for c in chunks] == [torch.Size([2, 16, 32])] * 4
    assert attn.shape == (2, 4, 64, 64)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 4, 64))
    # the explicit and the fused attention paths agree
    fused = raa(maps)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(chunks, fused))
    # changing only the last stage changes the first stage's output: queries attend across stages
    maps2 = maps[:3] + [torch.randn(2, 64, 2, 2)]
    assert not torch.allclose(raa(maps2)[0], fused[0])


def test_reference_pos_embed_depends_on_batch_position():
    grids = [(4, 4)] * 4
    maps = [torch.randn(1, 4, 4, 4).expand(2, -1, -1, -1) for _ in range(4)]  # the same image twice
    fixed = RegionAwareAttention([4] * 4, grids, dim=16, num_heads=2, pos_embed="fixed")
    reference = RegionAwareAttention([4] * 4, grids, dim=16, num_heads=2, pos_embed="reference")
    reference.load_state_dict(fixed.state_dict())
    out_fixed, out_ref = fixed(maps)[0], reference(maps)[0]
    assert torch.allclose(out_fixed[0], out_fixed[1], atol=1e-6)
    assert not torch.allclose(out_ref[0], out_ref[1], atol=1e-4)


def test_raa_rejects_non_square_region_counts():
    with pytest.raises(FofakdError):
        RegionAwareAttention([4] * 4, [(4, 4)] * 4, num_queries=48)


def test_aligners_reach_the_teacher_shapes():
    regions = torch.randn(3, 16, 32)
    assert RegionsToMap(32, 4, out_channels=24, out_grid=(7, 7))(regions).shape == (3, 24, 7, 7)
    assert RegionsToTokens(16, 32, out_length=49, out_dim=40)(regions).shape == (3, 49, 40)
    assert isinstance(build_map_aligner(8, (4, 4), 8, (4, 4)), torch.nn.Identity)
    assert build_map_aligner(8, (4, 4), 4, (8, 8))(torch.randn(2, 8, 4, 4)).shape == (2, 4, 8, 8)


def test_squeeze_excite_modes():
    x = torch.randn(2, 32, 5, 5)
    bias, gate = SqueezeExcite(32, mode="bias"), SqueezeExcite(32, mode="gate")
    gate.load_state_dict(bias.state_dict())
    g = bias(x)
    assert g.shape == (2, 32, 1, 1) and bool(((g > 0) & (g < 1)).all())
    assert torch.allclose(gate(x), x * g)


def test_prompt_starts_as_identity_and_pairs_feedback_by_position():
    prompt = AdaptiveFeedbackPrompt(_stage(), se_mode="gate").eval()  # eval: BN must not mix samples
    x = torch.randn(4, 4, 8, 8)
    assert torch.equal(prompt(x), x)  # beta = 0
    with torch.no_grad():
        prompt.beta.fill_(0.5)
    no_feedback = prompt(x)
    prompt.store_feedback(torch.randn(4, 8, 4, 4))
    assert prompt.feedback.shape == (4, 8, 4, 4)
    with_feedback = prompt(x)
    assert not torch.allclose(with_feedback, no_feedback)
    # a smaller batch uses the overlapping samples: sample k meets feedback k
    assert torch.allclose(prompt(x[:2]), with_feedback[:2], atol=1e-6)
    # a larger batch than the stored feedback runs without feedback
    prompt.store_feedback(torch.randn(2, 8, 4, 4))
    assert torch.allclose(prompt(x), no_feedback, atol=1e-6)


def test_feedback_survives_a_state_dict_round_trip():
    prompt = AdaptiveFeedbackPrompt(_stage(form="tokens", channels=6, grid=(2, 2)))
    prompt.store_feedback(torch.randn(5, 4, 6))
    fresh = AdaptiveFeedbackPrompt(_stage(form="tokens", channels=6, grid=(2, 2)))
    fresh.load_state_dict(prompt.state_dict())
    assert torch.equal(fresh.feedback, prompt.feedback)


@pytest.mark.parametrize("grid", [(4, 4), (8, 8), (16, 12), (7, 7)])
def test_regions_to_map_upsamples_after_its_norm_and_conv_only_when_that_is_exact(grid):
    # Reference: upsample the g x g regions first, then BatchNorm (batch statistics) and the 1x1 conv.
    torch.manual_seed(0)
    aligner = RegionsToMap(16, 4, out_channels=8, out_grid=grid).train()
    regions = torch.randn(3, 16, 16, requires_grad=True)
    out = aligner(regions)
    weights = torch.randn(out.shape)
    (out * weights).sum().backward()
    grads = [regions.grad.clone(), aligner.proj.weight.grad.clone(), aligner.norm.weight.grad.clone()]
    regions.grad = None
    aligner.zero_grad()
    x = regions.transpose(1, 2).reshape(3, 16, 4, 4)
    expected = aligner.proj(aligner.norm(torch.nn.functional.interpolate(x, size=grid, mode="nearest")))
    (expected * weights).sum().backward()
    assert out.shape == (3, 8, *grid)
    assert torch.allclose(out, expected, atol=1e-5)
    for got, want in zip(grads, [regions.grad, aligner.proj.weight.grad, aligner.norm.weight.grad]):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
