"""End-to-end runs on a Fashion-MNIST subset: train, distil, eval, export, resume, config errors."""
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import fofakd
from fofakd.cli import main

SMALL = ["--train-subset", "120", "--val-subset", "64", "--test-subset", "64", "--batch-size", "32",
         "--eval-batch-size", "64", "--epochs", "2", "--lr", "0.002"]
STUDENT = ["--student", "deit_tiny_patch16_224", "--student-kwargs", "patch_size=4", "depth=4",
           "--method-options", "dim=64"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--model", "resnet10t", "--out", str(out), *SMALL]) == 0
    return out


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _without_times(rows):
    return [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in rows]


def test_train_writes_a_complete_run_directory(teacher_run):
    names = {p.name for p in teacher_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "student.safetensors", "student.json", "checkpoints",
            "tensorboard"} <= names
    assert (teacher_run / "checkpoints" / "last.pt").is_file() and (teacher_run / "checkpoints" / "best.pt").is_file()
    rows = _metrics(teacher_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"lr", "loss", "loss_ce", "train_images_per_s", "val_top1", "val_top5", "wall_time_s"} <= set(rows[0])
    spec = json.loads((teacher_run / "student.json").read_text())
    assert (spec["model"], spec["num_classes"], spec["in_chans"], spec["img_size"]) == ("resnet10t", 10, 1, 28)
    config = yaml.safe_load((teacher_run / "config.yaml").read_text())
    assert config["train_subset"] == 120 and config["method"] == "scratch"  # a train run has no method
    assert any((teacher_run / "tensorboard").iterdir())


@pytest.mark.slow
def test_distill_eval_and_export(teacher_run, tmp_path, capsys):
    out = tmp_path / "fofa"
    code = main(["distill", "--teacher-checkpoint", str(teacher_run), "--method", "fofa", "--out", str(out),
                 *STUDENT, *SMALL])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "fofa" and summary["extra_parameters"] > 0
    last = _metrics(out)[-1]
    assert {"loss_kd", "loss_fd", "loss_reg"} <= set(last)
    # FOFA's diagnostics reach metrics.jsonl: per-stage feature losses average to loss_fd over the same steps
    stages = [f"diag/fd_s{i}" for i in range(4)]
    assert {"diag/raa_entropy", *stages, *(f"diag/beta_s{i}" for i in range(4))} <= set(last)
    assert sum(last[k] for k in stages) == pytest.approx(last["loss_fd"], rel=1e-5)
    # the exported student holds no training-only parameters
    keys = load_file(str(out / "student.safetensors")).keys()
    assert keys == fofakd.create_model("deit_tiny_patch16_224", 10, in_chans=1, img_size=28, patch_size=4,
                                       depth=4).state_dict().keys()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--subset", "64"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 64
    assert result["top1"] == pytest.approx(summary["test_top1"])  # same weights, same 64 test images
    assert main(["export", "--checkpoint", str(out), "--format", "onnx", "--out", str(tmp_path / "s.onnx")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] < 1e-4
    assert main(["export", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--format", "torchscript",
                 "--out", str(tmp_path / "s.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] < 1e-5


@pytest.mark.slow
def test_resumed_run_ends_like_an_uninterrupted_one(teacher_run, tmp_path):
    # drop path draws from the global generator, RandAugment and erasing from the per-epoch ones
    student = [*STUDENT[:5], "drop_path_rate=0.2", *STUDENT[5:]]
    common = ["distill", "--teacher-checkpoint", str(teacher_run), "--method", "fofa", *student, *SMALL, "--ema",
              "--ema-decay", "0.9", "--randaugment", "5", "--reprob", "0.25"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([*common, "--out", str(whole)]) == 0
    assert main([*common, "--out", str(parts), "--stop-after", "1"]) == 0
    assert len(_metrics(parts)) == 1 and not (parts / "student.safetensors").exists()
    assert main([*common, "--out", str(parts), "--resume"]) == 0
    a, b = load_file(str(whole / "student.safetensors")), load_file(str(parts / "student.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _without_times(_metrics(whole)) == _without_times(_metrics(parts))
    last_a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    last_b = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    feedback = [k for k in last_a if k.endswith(".feedback")]
    assert feedback and all(torch.equal(last_a[k], last_b[k]) for k in feedback)


def test_existing_run_is_refused_and_kept(teacher_run, capsys):
    before = (teacher_run / "metrics.jsonl").read_text()
    assert main(["train", "--model", "resnet10t", "--out", str(teacher_run), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "Traceback" not in err
    assert (teacher_run / "metrics.jsonl").read_text() == before


def test_resume_without_checkpoint_is_an_error(tmp_path, capsys):
    assert main(["train", "--model", "resnet10t", "--out", str(tmp_path / "new"), "--resume", *SMALL]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("lr: 0.1\nlearning_rate: 0.1\n", "config key 'learning_rate' is not an option"),
    ("epochs: ten\n", "config key 'epochs' must be an integer"),
    ("amp: fp8\n", "config key 'amp' must be one of"),
])
def test_config_errors_name_the_key(tmp_path, capsys, content, message):
    config = tmp_path / "run.yaml"
    config.write_text(content)
    assert main(["train", "--model", "resnet10t", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_flags_override_the_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: resnet10t\nepochs: 5\nbatch_size: 16\ntrain_subset: 64\nval_subset: 32\n"
                      "test_subset: 32\n")
    out = tmp_path / "r"
    assert main(["train", "--config", str(config), "--epochs", "1", "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["batch_size"] == 16
    assert len(_metrics(out)) == 1


def test_batch_larger_than_the_data_is_an_error(tmp_path, capsys):
    assert main(["train", "--model", "resnet10t", "--train-subset", "50", "--batch-size", "64",
                 "--out", str(tmp_path / "r")]) == 2
    assert "larger than the 50 training images" in capsys.readouterr().err


@pytest.mark.slow
def test_rsd_resumes_bit_for_bit_exports_and_evaluates(teacher_run, tmp_path, capsys):
    common = ["distill", "--teacher-checkpoint", str(teacher_run), "--method", "rsd", *STUDENT[:5], *SMALL,
              "--method-options", "kappa=0.02"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([*common, "--out", str(whole)]) == 0
    assert main([*common, "--out", str(parts), "--stop-after", "1"]) == 0
    assert main([*common, "--out", str(parts), "--resume"]) == 0
    last_a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    last_b = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    projector = [k for k in last_a if k.startswith("projector.")]
    assert projector and all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert _without_times(_metrics(whole)) == _without_times(_metrics(parts))
    assert {"loss_ce", "loss_rsd"} <= set(_metrics(whole)[-1]) and "loss_kd" not in _metrics(whole)[-1]
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["extra_parameters"] == sum(last_a[k].numel() for k in projector if not k.endswith(
        ("running_mean", "running_var", "num_batches_tracked")))
    keys = load_file(str(whole / "student.safetensors")).keys()
    assert keys == fofakd.create_model("deit_tiny_patch16_224", 10, in_chans=1, img_size=28, patch_size=4,
                                       depth=4).state_dict().keys()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(whole), "--subset", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(summary["test_top1"])
