"""`fofakd detect`: runs with a run directory, exact resume, distillation from a teacher run, eval, export, errors."""
import json

import pytest
import torch
from safetensors.torch import load_file

from fofakd.cli import main
from fofakd.engine import faults

pytestmark = pytest.mark.slow  # end-to-end runs; CI runs them, `-m 'not slow'` skips them locally


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Options of a tiny detection run on 16 synthetic 64 px images (4 steps per epoch)."""
    data = tmp_path_factory.mktemp("shapes")
    return ["--data-dir", str(data), "--shapes-images", "16", "--shapes-size", "64", "--epochs", "2",
            "--batch-size", "4", "--eval-batch-size", "8", "--workers", "0", "--lr", "0.01",
            "--detector-options", "fpn_channels=32", "representation_size=64", "rpn_post_nms_top_n_train=100",
            "box_batch_size_per_image=32"]


@pytest.fixture(scope="module")
def teacher_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "teacher"
    assert main(["detect", "train", "--model", "resnet10t", "--out", str(out), *tiny]) == 0
    return out


def _metrics(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in rows]


def test_a_run_directory_holds_config_metrics_checkpoints_and_the_detector(teacher_run):
    summary = json.loads((teacher_run / "summary.json").read_text())
    spec = json.loads((teacher_run / "student.json").read_text())
    assert spec["task"] == "detection" and spec["num_classes"] == 4
    assert spec["detector"]["fixed_size"] == [64, 64] and spec["detector"]["fpn_channels"] == 32
    assert [c["name"] for c in spec["categories"]] == ["square", "disc", "triangle"]
    rows = _metrics(teacher_run)
    assert [r["epoch"] for r in rows] == [1, 2] and {"val_AP", "val_AP50", "loss_classifier"} <= set(rows[0])
    assert rows[1]["loss"] < rows[0]["loss"]
    assert summary["final_AP"] == rows[-1]["val_AP"]  # no EMA: the final detector is the one validated last
    assert (teacher_run / "checkpoints" / "best.pt").is_file() and any((teacher_run / "tensorboard").iterdir())


@pytest.mark.parametrize("stop", [["--stop-after", "1"], "term-at-step:6"])
def test_an_interrupted_detection_run_resumes_to_the_same_end(tiny, teacher_run, tmp_path, monkeypatch, stop):
    out = tmp_path / "run"
    args = ["detect", "train", "--model", "resnet10t", "--out", str(out), *tiny]
    if isinstance(stop, str):  # SIGTERM after step 6: mid-epoch 2; the handler saves and the run exits 143
        monkeypatch.setenv("FOFAKD_FAULT", stop)
        monkeypatch.setattr(faults, "_counts", {})
        assert main(args) == 143
        monkeypatch.delenv("FOFAKD_FAULT")
        assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch_step"] == 2
    else:
        assert main(args + stop) == 0
    assert not (out / "student.safetensors").exists()
    assert main(args + ["--resume"]) == 0
    resumed, reference = load_file(out / "student.safetensors"), load_file(teacher_run / "student.safetensors")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    assert _metrics(out) == _metrics(teacher_run)


def test_fofa_distils_from_a_teacher_run_then_evaluates_and_exports(tiny, teacher_run, tmp_path, capsys):
    out = tmp_path / "fofa"
    teacher_before = load_file(teacher_run / "student.safetensors")
    assert main(["detect", "distill", "--teacher-checkpoint", str(teacher_run), "--student", "resnet10t",
                 "--method", "fofa", "--method-options", "dim=32", "heads=4", "--out", str(out), *tiny]) == 0
    rows = _metrics(out)
    assert {"loss_kd", "loss_fd", "loss_reg"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "fofa" and summary["extra_parameters"] > 0
    capsys.readouterr()
    # The saved detector, rebuilt from student.json, scores what the run measured on the same images.
    assert main(["detect", "eval", "--checkpoint", str(out)]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["images"] == 4 and measured["AP50"] == pytest.approx(summary["final_AP50"])
    assert measured["AP"] == pytest.approx(summary["final_AP"])
    after = load_file(teacher_run / "student.safetensors")
    assert all(torch.equal(after[k], teacher_before[k]) for k in after)
    assert main(["export", "--checkpoint", str(out), "--format", "onnx", "--out", str(tmp_path / "det.onnx")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["detections"] > 0 and report["max_abs_diff"] < 1e-2 and report["input_shape"] == [3, 64, 64]


@pytest.mark.parametrize("extra, message", [
    (["--method-options", "rank=3"], "method 'fofa' has no option rank"),
    (["--method", "dkdd"], "method 'dkdd' is not known; did you mean dkd"),
    (["--method", "ofa"], "method 'ofa' needs what only classification models give, so it cannot be used for "
                          "detection; use one of dist, dkd, fitnet, fofa, kd, scratch"),
    (["--batch-size", "64"], "larger than the 16 training images"),
    (["--data", "coco", "--data-dir", "."], "has no 'train2017' split"),
])
def test_detection_mistakes_get_one_clear_line(tiny, teacher_run, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    code = main(["detect", "distill", "--teacher-checkpoint", str(teacher_run), "--student", "resnet10t",
                 "--out", str(out), *tiny, *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_detection_configs_take_detection_options_only(tmp_path, capsys):
    from fofakd.detection.config import DetectionConfig
    from fofakd.engine.config import build_config

    config = tmp_path / "det.yaml"
    config.write_text("model: resnet10t\nimg_size: 320\ndetector_options: {fpn_channels: 64}\n")
    cfg = build_config({"epochs": 3}, config, schema=DetectionConfig)
    assert (cfg.model, cfg.epochs, cfg.opt, cfg.detector_options) == ("resnet10t", 3, "sgd", {"fpn_channels": 64})
    assert cfg.input_size() == {"min_size": 320, "max_size": 320, "fixed_size": (320, 320)}
    config.write_text("model: resnet10t\nmixup: 0.8\n")  # a classification option
    assert main(["detect", "train", "--config", str(config), "--out", str(tmp_path / "x")]) == 2
    assert "config key 'mixup' is not an option" in capsys.readouterr().err


def test_coco_data_needs_its_folder(tmp_path, capsys):
    assert main(["detect", "train", "--model", "resnet10t", "--data", "coco", "--out", str(tmp_path / "x")]) == 2
    assert "--data coco needs --data-dir" in capsys.readouterr().err


def test_a_classification_run_is_not_a_detection_teacher(tiny, tmp_path, capsys):
    run = tmp_path / "cls"
    run.mkdir()
    (run / "student.json").write_text(json.dumps({"model": "resnet10t", "num_classes": 10}))
    (run / "student.safetensors").write_bytes(b"")
    assert main(["detect", "distill", "--teacher-checkpoint", str(run), "--student", "resnet10t",
                 "--out", str(tmp_path / "x"), *tiny]) == 2
    assert "is not a finished `fofakd detect` run" in capsys.readouterr().err


def test_detection_demo_compares_the_methods_and_reuses_its_teacher(tmp_path, monkeypatch, capsys):
    from fofakd.detection import demo

    monkeypatch.setitem(demo.SIZES, "quick", (8, 1, 1))  # one step per run: the wiring, not the numbers
    monkeypatch.setenv("FOFAKD_DATA", str(tmp_path / "data"))
    out = tmp_path / "demo"
    rows = {row["run"]: row for row in demo.run_detection_demo(out, quick=True)}
    assert list(rows)[1:] == ["scratch", "kd", "fitnet", "fofa"]
    assert rows["scratch"]["extra_parameters"] == rows["kd"]["extra_parameters"] == 0
    assert 0 < rows["fitnet"]["extra_parameters"] < rows["fofa"]["extra_parameters"]
    assert json.loads((out / "results.json").read_text()) == list(rows.values())
    assert "| fofa |" in (out / "report.md").read_text()
    teacher = out / "teacher-quick"
    stamp = (teacher / "student.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert demo._teacher("quick", out) == teacher and "reusing" in capsys.readouterr().out
    assert (teacher / "student.safetensors").stat().st_mtime_ns == stamp
