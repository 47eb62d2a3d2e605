import pytest
import torch

import fofakd
from fofakd.features.stages import default_stage_indices

FAMILY_MODELS = [
    "resnet18", "resnet50", "convnext_atto", "convnext_tiny", "mobilenetv2_100", "mobilenetv3_small_100",
    "mobilenetv3_large_100", "efficientnet_b0", "vit_tiny_patch16_224", "vit_small_patch16_224",
    "deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "swin_tiny_patch4_window7_224", "mixer_s16_224",
    "resmlp_12_224", "mixer_s4_32", "resmlp_12_p4_32",
]
TOKEN_MODELS = {"vit", "deit", "swin", "mixer", "resmlp"}


def _expected_form(name: str) -> str:
    return "tokens" if name.split("_")[0] in TOKEN_MODELS else "map"


@pytest.mark.parametrize("name", FAMILY_MODELS)
@pytest.mark.parametrize("size", [32, 64, 224])
def test_four_ordered_stages(name, size):
    if size == 224 and "4_32" in name:
        pytest.skip("patch-4 variants are for small images")
    model = fofakd.create_model(name, num_classes=10, img_size=size)
    stages = fofakd.discover_stages(model, (3, size, size))
    assert len(stages) == 4
    assert stages.indices == sorted(stages.indices) and len(set(stages.indices)) == 4
    areas = [s.grid[0] * s.grid[1] for s in stages.stages]
    assert areas == sorted(areas, reverse=True), "later stages must not be finer than earlier ones"
    assert all(s.form == _expected_form(name) for s in stages.stages)
    x = torch.randn(2, 3, size, size)
    model.eval()
    logits, feats = fofakd.forward_stages(model, x, stages)
    assert torch.allclose(logits, model(x), atol=1e-5)
    for feat, stage in zip(feats, stages.stages):
        assert tuple(feat.shape) == (2, *stage.feature_shape)


@pytest.mark.parametrize(
    "name,grids",
    [
        ("resnet18", [(56, 56), (28, 28), (14, 14), (7, 7)]),
        ("swin_tiny_patch4_window7_224", [(56, 56), (28, 28), (14, 14), (7, 7)]),
        ("vit_tiny_patch16_224", [(14, 14)] * 4),
    ],
)
def test_stages_at_224(name, grids):
    model = fofakd.create_model(name, num_classes=10, img_size=224)
    stages = fofakd.discover_stages(model, (3, 224, 224))
    assert [s.grid for s in stages.stages] == grids


def test_isotropic_cut_points_follow_the_reference():
    vit = fofakd.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32)
    assert default_stage_indices(vit) == [1, 3, 9, 11]
    stages = fofakd.discover_stages(vit, (3, 32, 32))
    assert [s.start_module for s in stages.stages] == ["blocks.0", "blocks.2", "blocks.4", "blocks.10"]
    deep = fofakd.create_model("resmlp_24_p4_32", num_classes=10, img_size=32)
    assert default_stage_indices(deep) == [3, 7, 19, 23]


def test_hierarchical_stage_starts():
    resnet = fofakd.discover_stages(fofakd.create_model("resnet18", num_classes=10), (3, 64, 64))
    assert [s.start_module for s in resnet.stages] == ["layer1", "layer2", "layer3", "layer4"]
    mnv2 = fofakd.discover_stages(fofakd.create_model("mobilenetv2_100", num_classes=10), (3, 64, 64))
    # stage ends blocks.1, 2, 4, 6 -> each stage starts right after the previous stage's last block
    assert [s.start_module for s in mnv2.stages] == ["blocks.1", "blocks.2", "blocks.3", "blocks.5"]
    assert [s.input_channels for s in mnv2.stages] == [16, 24, 32, 96]


@pytest.mark.parametrize("name,prefix", [("deit_tiny_patch16_224", 1), ("deit_tiny_distilled_patch16_224", 2)])
def test_prefix_tokens_are_removed_from_the_front(name, prefix):
    model = fofakd.create_model(name, num_classes=10, img_size=32).eval()
    stages = fofakd.discover_stages(model, (3, 32, 32))
    assert stages.num_prefix_tokens == prefix
    recorded = {}
    model.blocks[1].register_forward_hook(lambda m, i, o: recorded.setdefault("out", o))
    _, feats = fofakd.forward_stages(model, torch.randn(2, 3, 32, 32), stages)
    assert torch.equal(feats[0], recorded["out"][:, prefix:])


def test_stage_override():
    model = fofakd.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32)
    stages = fofakd.discover_stages(model, (3, 32, 32), indices=[2, 5, 8, -1], form="map")
    assert stages.indices == [2, 5, 8, 11]
    assert all(s.form == "map" and s.feature_shape == (192, 2, 2) for s in stages.stages)
    with pytest.raises(fofakd.FofakdError):
        fofakd.discover_stages(model, (3, 32, 32), indices=[5, 2, 8, 11])
