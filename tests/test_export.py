"""Exports round-trip: a safetensors export is one self-describing file, ONNX carries what a consumer needs."""
import json

import numpy as np
import pytest
import torch

import fofakd
from fofakd.cli import main
from fofakd.data import build_eval_data
from fofakd.classification.config import build_config
from fofakd.models.checkpoint import state_fingerprint

SMALL = ["--train-subset", "96", "--val-subset", "32", "--test-subset", "64", "--batch-size", "32",
         "--eval-batch-size", "64", "--epochs", "1", "--lr", "0.002"]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vit"
    assert main(["train", "--model", "deit_tiny_patch16_224", "--model-kwargs", "patch_size=4", "depth=2",
                 "--out", str(out), *SMALL]) == 0
    return out


def _test_batch(count=16):
    data = build_eval_data(build_config({"data": "fashion-mnist", "test_subset": count, "eval_batch_size": count}))
    return next(iter(data.test))[0]


def test_a_safetensors_export_is_one_file_that_evaluates_and_rebuilds(run, tmp_path, capsys):
    out = tmp_path / "exports" / "fofa.safetensors"
    assert main(["export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["fofa.safetensors"]  # no side file
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--subset", "64"]) == 0
    from_export = json.loads(capsys.readouterr().out)
    assert main(["eval", "--checkpoint", str(run), "--subset", "64"]) == 0
    assert from_export == json.loads(capsys.readouterr().out)
    images = _test_batch()
    rebuilt = fofakd.create_model(checkpoint=out).eval()
    original = fofakd.create_model(checkpoint=run).eval()
    assert rebuilt.patch_embed.proj.kernel_size == (4, 4) and len(rebuilt.blocks) == 2
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), original(images), rtol=0, atol=0)
    assert main(["export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_create_model_without_a_name_needs_a_file_that_names_it(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, str(plain))
    with pytest.raises(fofakd.FofakdError, match="needs a model name and num_classes"):
        fofakd.create_model(checkpoint=plain)


@pytest.mark.parametrize("fold", [False, True])
def test_onnx_carries_its_input_and_class_names_and_may_fold_the_normalisation(run, tmp_path, capsys, fold):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "s.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out),
                 *(["--fold-normalisation"] if fold else [])]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["class_names"]) == FASHION
    assert json.loads(meta["input_size"]) == [1, 28, 28]
    mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    assert mean == pytest.approx([0.2860]) and std == pytest.approx([0.3530])
    assert ("folded" in meta["input_range"]) == fold
    # Feed what the metadata says: raw pixels when folded, else (pixels - mean) / std by hand.
    normalised = _test_batch()
    pixels = normalised * std[0] + mean[0]
    feed = pixels if fold else (pixels - mean[0]) / std[0]
    logits = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": feed.numpy()})[0]
    with torch.no_grad():
        expected = fofakd.create_model(checkpoint=run).eval()(normalised).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_an_export_is_a_teacher_that_names_its_model(run, tmp_path):
    exported = tmp_path / "teacher.safetensors"
    assert main(["export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(exported)]) == 0
    out = tmp_path / "kd"
    assert main(["distill", "--teacher-checkpoint", str(exported), "--student", "resnet10t", "--method", "kd",
                 "--out", str(out), *SMALL]) == 0  # no --teacher: the file says deit_tiny with patch 4, depth 2
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["teacher"]["source"] == str(exported)
    assert state["teacher"]["sha256"] == state_fingerprint(fofakd.create_model(checkpoint=exported))
