import subprocess
import sys

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import fofakd
from fofakd.models import read_state_dict


@pytest.fixture
def resnet_file(tmp_path):
    model = fofakd.create_model("resnet18", num_classes=10)
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_unknown_model_suggests_close_names():
    with pytest.raises(fofakd.FofakdError, match="did you mean resnet18"):
        fofakd.create_model("resnet_18", num_classes=10)


@pytest.mark.parametrize("wrap", ["plain", "nested", "ddp", "safetensors"])
def test_checkpoint_formats_load_the_same_weights(tmp_path, resnet_file, wrap):
    model, _ = resnet_file
    state = model.state_dict()
    path = tmp_path / "ckpt.pt"
    if wrap == "plain":
        torch.save(state, path)
    elif wrap == "nested":
        torch.save({"state_dict": state, "epoch": 3}, path)
    elif wrap == "ddp":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        path = tmp_path / "ckpt.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = fofakd.create_model("resnet18", num_classes=10, checkpoint=path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_torchvision_checkpoint_gives_the_same_outputs(tmp_path):
    tv = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    ours = fofakd.create_model("resnet18", num_classes=10, checkpoint=tmp_path / "tv.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), tv(x), atol=1e-5)


def test_classifier_mismatch_is_an_error_unless_reset(resnet_file):
    model, path = resnet_file
    with pytest.raises(fofakd.FofakdError, match="10-class classifier"):
        fofakd.create_model("resnet18", num_classes=5, checkpoint=path)
    reset = fofakd.create_model("resnet18", num_classes=5, checkpoint=path, reset_head=True)
    assert reset.fc.out_features == 5
    assert torch.equal(reset.conv1.weight, model.conv1.weight)


def test_grey_scale_model_adapts_the_first_conv(resnet_file):
    model, path = resnet_file
    grey = fofakd.create_model("resnet18", num_classes=10, in_chans=1, checkpoint=path)
    assert torch.allclose(grey.conv1.weight[:, 0], model.conv1.weight.sum(dim=1), atol=1e-6)


def test_wrong_architecture_is_named(resnet_file):
    _, path = resnet_file
    with pytest.raises(fofakd.FofakdError, match="does not fit"):
        fofakd.create_model("resnet34", num_classes=10, checkpoint=path)


def test_vit_checkpoint_is_resampled_to_another_image_size(tmp_path):
    big = fofakd.create_model("vit_tiny_patch16_224", num_classes=10, img_size=224)
    torch.save(big.state_dict(), tmp_path / "vit.pth")
    small = fofakd.create_model("vit_tiny_patch16_224", num_classes=10, img_size=64, checkpoint=tmp_path / "vit.pth")
    assert small.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(small.blocks[3].mlp.fc1.weight, big.blocks[3].mlp.fc1.weight)


def test_pickled_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "evil.pt"
    script = (
        "import os, torch\n"
        "class Evil:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'state_dict': Evil()}}, '{payload}')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    with pytest.raises(fofakd.FofakdError, match="arbitrary code"):
        read_state_dict(payload)
    assert not marker.exists()


def test_truncated_and_missing_checkpoints(tmp_path, resnet_file):
    _, path = resnet_file
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(fofakd.FofakdError, match="truncated or corrupt"):
        read_state_dict(cut)
    with pytest.raises(fofakd.FofakdError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


@pytest.mark.parametrize("name", ["mixer_s4_32", "mixer_b4_32", "resmlp_12_p4_32", "resmlp_24_p4_32"])
def test_small_image_variants(name):
    model = fofakd.create_model(name, num_classes=10, in_chans=1, img_size=28)
    assert model.stem.proj.kernel_size == (4, 4)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert len(fofakd.discover_stages(model, (1, 28, 28))) == 4
