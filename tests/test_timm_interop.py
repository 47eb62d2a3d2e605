"""Students out as plain timm model folders, and timm model folders and hub names in, wherever fofakd names a model."""
import json
import subprocess
import sys

import pytest
import timm
import torch
import yaml

from cli_checks import fails_cleanly
from fofakd import create_model
from fofakd.cli import main
from fofakd.tasks import load_student
from fofakd.errors import FofakdError

pytestmark = pytest.mark.slow  # most tests here train runs end to end

TINY = ["--train-subset", "64", "--val-subset", "32", "--test-subset", "64", "--batch-size", "32", "--epochs", "1"]
VIT = ["vit_tiny_patch16_224", "--model-kwargs", "patch_size=4", "depth=2"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("timm")
    assert main(["train", "--model", *VIT, "--out", str(root / "run"), *TINY]) == 0
    assert main(["export", "--checkpoint", str(root / "run"), "--format", "timm", "--out", str(root / "timm")]) == 0
    return root


def test_plain_timm_loads_the_export_with_the_runs_outputs_and_preprocessing(exported):
    student, spec, _ = load_student(exported / "run")
    model = timm.create_model(f"local-dir:{exported / 'timm'}", pretrained=True).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(images), student(images))
    config = timm.data.resolve_data_config(model=model)
    preprocessing = tuple(tuple(config[k]) for k in ("input_size", "mean", "std"))
    assert preprocessing == ((1, 28, 28), (0.286,), (0.353,))
    assert (config["crop_pct"], config["interpolation"]) == (1.0, "bilinear")  # Fashion-MNIST is resized, not cropped
    saved = json.loads((exported / "timm" / "config.json").read_text())
    assert saved["label_names"] == spec["class_names"] and "tag" not in saved["pretrained_cfg"]
    card = (exported / "timm" / "README.md").read_text()
    summary = json.loads((exported / "run" / "summary.json").read_text())
    assert f"**Test top-1 (%):** {summary['test_top1']}" in card and "**Method:** scratch" in card
    assert sorted(p.name for p in (exported / "timm").iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_the_export_comes_back_as_eval_input_teacher_and_start(exported, tmp_path, capsys):
    folder = str(exported / "timm")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", folder, "--data", "fashion-mnist", "--subset", "64"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["top1"] == json.loads((exported / "run" / "summary.json").read_text())["test_top1"]
    # As a teacher: the folder names its own model.
    assert main(["distill", "--teacher-checkpoint", folder, "--student", "resnet10t", "--method", "kd",
                 "--out", str(tmp_path / "kd"), *TINY]) == 0
    # As a model name to start from, through timm's local-dir source; the run records what it resolved to.
    assert main(["train", "--model", f"local-dir:{folder}", "--pretrained", "--out", str(tmp_path / "ft"), *TINY]) == 0
    spec = json.loads((tmp_path / "ft" / "student.json").read_text())
    assert spec["model"] == "vit_tiny_patch16_224" and spec["kwargs"]["patch_size"] == 4
    assert yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())["model"] == f"local-dir:{folder}"


def test_a_timm_export_is_replaced_only_when_told(exported, tmp_path, capsys):
    run, folder = str(exported / "run"), tmp_path / "timm"
    assert main(["export", "--checkpoint", run, "--format", "timm", "--out", str(folder)]) == 0
    fails_cleanly(["export", "--checkpoint", run, "--format", "timm", "--out", str(folder)], capsys,
                  "already holds a timm export; pass --overwrite")
    assert main(["export", "--checkpoint", run, "--format", "timm", "--out", str(folder), "--overwrite"]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    fails_cleanly(["export", "--checkpoint", run, "--format", "timm", "--out", str(mine), "--overwrite"], capsys,
                  "holds files that are not a timm export")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_folder_without_a_config_is_one_sentence(tmp_path, capsys):
    with pytest.raises(FofakdError, match="holds no readable config.json"):
        create_model(f"local-dir:{tmp_path}", num_classes=10)
    fails_cleanly(["train", "--model", f"local-dir:{tmp_path}", "--pretrained", "--out", str(tmp_path / "r")],
                  capsys, "holds no readable config.json")


def test_an_unreachable_hub_model_is_one_sentence_without_retries(tmp_path):
    # Offline (as these tests run), a hub name fails at once in one sentence; the bound only guards against a hang.
    result = subprocess.run([sys.executable, "-m", "fofakd.cli", "train", "--model", "hf-hub:timm/not-a-model",
                             "--pretrained", "--out", str(tmp_path / "r"), *TINY],
                            capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                              "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert err.startswith("fofakd: error: could not fetch 'hf-hub:timm/not-a-model' from the Hugging Face Hub")
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_push_without_network_keeps_the_local_export(exported, tmp_path, capsys):
    out = tmp_path / "timm"
    fails_cleanly(["export", "--checkpoint", str(exported / "run"), "--format", "timm", "--out", str(out),
                   "--push-to-hub", "someone/student"], capsys,
                  f"could not reach the Hugging Face Hub to push to 'someone/student' (offline, or no network); the "
                  f"local export in '{out}' is kept")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()

