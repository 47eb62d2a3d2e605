"""Killed runs resume exactly; user mistakes get one clear line, exit code 2 and lose nothing."""
import errno
import json
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from cli_checks import fails_cleanly
from fofakd.cli import main
from fofakd.engine.run_dir import MARKER

SMALL = ["--train-subset", "120", "--val-subset", "64", "--test-subset", "64", "--batch-size", "32",
         "--eval-batch-size", "64", "--epochs", "2", "--lr", "0.002"]  # 4 steps per epoch, the last of 24 images
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--model", "resnet10t", "--out", str(out), *SMALL, "--epochs", "1"]) == 0
    return out


def _distill_args(teacher, out):
    return ["distill", "--teacher-checkpoint", str(teacher), "--method", "fofa", "--student",
            "deit_tiny_patch16_224", "--student-kwargs", "patch_size=4", "depth=4", "drop_path_rate=0.1",
            "--method-options", "dim=64", "--reprob", "0.25", "--out", str(out), *SMALL]


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in rows]


@pytest.fixture(scope="module")
def reference(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(_distill_args(teacher, out)) == 0
    return out


@pytest.mark.parametrize("fault,code", [
    ("kill-at-step:6", -9),       # SIGKILL in the middle of epoch 2
    ("kill-after-epoch:1", -9),   # SIGKILL right after epoch 1 was saved
    ("kill-in-save:3", -9),       # SIGKILL half-way through writing epoch 2's last.pt (writes: last, best, last)
    ("term-at-step:6", 143),      # SIGTERM mid-epoch: a checkpoint is saved and the run exits cleanly
])
@pytest.mark.slow
def test_killed_run_resumes_to_the_same_end(teacher, reference, tmp_path, fault, code):
    out = tmp_path / "run"
    # The same thread count as this process, which runs the reference and the resume: sums over threads add in
    # another order with another count, and the comparison below is bit for bit.
    env = {**ENV, "FOFAKD_FAULT": fault, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    killed = subprocess.run([sys.executable, "-m", "fofakd.cli", *_distill_args(teacher, out)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == code, killed.stderr[-2000:]
    assert not (out / "student.safetensors").exists()
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=True)  # always a complete checkpoint
    if fault.startswith("kill-in-save"):
        assert last["epoch"] == 1 and (out / "checkpoints" / ".last.pt.tmp").exists()
    if fault.startswith("term"):
        assert "continue with --resume" in killed.stderr and "Traceback" not in killed.stderr
        assert (last["epoch"], last["epoch_step"]) == (1, 2)
    assert main([*_distill_args(teacher, out), "--resume"]) == 0
    a, b = load_file(str(reference / "student.safetensors")), load_file(str(out / "student.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _metrics(out) == _metrics(reference)


def test_missing_data_dir(tmp_path, capsys):
    fails_cleanly(["train", "--model", "resnet10t", "--data-dir", str(tmp_path / "none"), "--out",
                    str(tmp_path / "r")], capsys, "does not exist")


def _image_folder(root, corrupt=False, empty_class=False):
    for split in ("train", "val"):
        for label, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True)
            if empty_class and split == "train" and name == "b":
                continue
            for i in range(4):
                Image.new("RGB", (16, 16), (label * 200, i * 40, 0)).save(folder / f"{i}.png")
    if corrupt:
        (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def test_empty_class_folder(tmp_path, capsys):
    _image_folder(tmp_path / "data", empty_class=True)
    fails_cleanly(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                    "--out", str(tmp_path / "r")], capsys, "is empty")


def test_corrupt_image_is_skipped_with_one_plain_line(tmp_path, capfd):
    _image_folder(tmp_path / "data", corrupt=True)
    code = main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--img-size", "32", "--batch-size", "3", "--epochs", "1", "--workers", "0",
                 "--out", str(tmp_path / "r")])
    assert code == 0
    lines = [line for line in capfd.readouterr().err.splitlines() if "broken.png" in line]
    assert lines and all(line.startswith("fofakd: warning: skipping unreadable image") for line in lines)


def test_a_one_class_folder_is_refused(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / "data" / split / "only").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / split / "only" / "0.png")
    fails_cleanly(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                    "--out", str(tmp_path / "r")], capsys, "has one class folder ('only'); a classifier needs")


def test_eval_of_a_folder_run_finds_its_images_and_names_the_split(tmp_path, capsys):
    _image_folder(tmp_path / "data")
    out = tmp_path / "r"
    assert main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--img-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["test_split"], summary["test_samples"]) == ("val", 8)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out)]) == 0  # no --data-dir: the run recorded it
    result = json.loads(capsys.readouterr().out)
    assert (result["split"], result["samples"]) == ("val", 8)  # no test/ folder: val/ is what was scored


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet_10t"], "did you mean resnet10t"),
    (["--model", "resnet10t", "--train-subset", "50", "--batch-size", "64"], "larger than the 50 training images"),
])
def test_bad_train_arguments(tmp_path, capsys, args, message):
    fails_cleanly(["train", *args, "--out", str(tmp_path / "r")], capsys, message)


def test_unknown_method(teacher, tmp_path, capsys):
    fails_cleanly(["distill", "--teacher-checkpoint", str(teacher), "--student", "resnet10t", "--method", "fitnets",
                    "--out", str(tmp_path / "r"), *SMALL], capsys, "did you mean fitnet")


def test_teacher_checkpoint_that_does_not_fit(teacher, tmp_path, capsys):
    fails_cleanly(["distill", "--teacher-checkpoint", str(teacher / "student.safetensors"), "--teacher", "resnet18",
                    "--student", "resnet10t", "--out", str(tmp_path / "r"), *SMALL], capsys, "does not fit")
    ten_classes = torch.load(teacher / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    state = {k[len("student."):]: v for k, v in ten_classes.items() if k.startswith("student.")}
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:5], state["fc.bias"][:5]
    torch.save(state, tmp_path / "five.pth")
    fails_cleanly(["distill", "--teacher-checkpoint", str(tmp_path / "five.pth"), "--teacher", "resnet10t",
                    "--student", "resnet10t", "--out", str(tmp_path / "r2"), *SMALL], capsys, "5-class classifier")


def test_pickled_code_in_a_teacher_checkpoint_is_never_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    script = ("import os, torch\nclass Evil:\n    def __reduce__(self): return (os.system, ('touch " + str(marker)
              + "',))\ntorch.save({'state_dict': Evil()}, '" + str(tmp_path / "evil.pth") + "')\n")
    subprocess.run([sys.executable, "-c", script], check=True)
    fails_cleanly(["distill", "--teacher-checkpoint", str(tmp_path / "evil.pth"), "--teacher", "resnet10t",
                    "--student", "resnet10t", "--out", str(tmp_path / "r"), *SMALL], capsys, "arbitrary code")
    assert not marker.exists()


@pytest.mark.slow
def test_truncated_checkpoint_on_resume(teacher, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*_distill_args(teacher, out), "--stop-after", "1"]) == 0
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    fails_cleanly([*_distill_args(teacher, out), "--resume"], capsys, "truncated or corrupt")


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(teacher, tmp_path, capsys, monkeypatch):
    import fofakd.methods.kd as kd

    out = tmp_path / "r"
    args = ["distill", "--teacher-checkpoint", str(teacher), "--student", "resnet10t", "--method", "kd",
            "--out", str(out), *SMALL]
    assert main([*args, "--stop-after", "1"]) == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    monkeypatch.setattr(kd, "kd_loss", lambda *a, **k: torch.tensor(float("nan")))  # the KD term turns bad
    fails_cleanly([*args, "--resume"], capsys, "the loss became nan at step 5 (epoch 2) in loss, loss_kd")
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    import fofakd.engine.checkpoint as checkpoint

    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == 3:  # epoch 2's last.pt (epoch 1 wrote last.pt and best.pt)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    out = tmp_path / "r"
    fails_cleanly(["train", "--model", "resnet10t", "--out", str(out), *SMALL], capsys, "No space left on device")
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert not (out / "checkpoints" / ".last.pt.tmp").exists()


@pytest.mark.slow
def test_killing_one_process_ends_the_other(teacher, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fofakd.cli", "distill", "--teacher-checkpoint", str(teacher), "--student", "resnet10t",
           "--method", "kd", "--out", str(tmp_path / "r"), *SMALL, "--batch-size", "16", "--epochs", "3"]
    env = {**ENV, "OMP_NUM_THREADS": "1", "FOFAKD_FAULT": "kill-at-step:3", "FOFAKD_FAULT_RANK": "1"}
    # The bound is liveness, not speed: the survivor must not wait forever at its next collective.
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    report = result.stderr.split("Root Cause (first observed failure):")
    assert len(report) == 2, result.stderr[-2000:]
    survivors, cause = report
    assert re.search(r"rank\s*: 1 .*\n\s*exitcode\s*: -9 .*SIGKILL", cause), cause  # the killed one
    assert re.search(r"rank\s*: 0 .*\n\s*exitcode\s*: (-15|1|143)", survivors), survivors  # ended, not hung
    assert not (tmp_path / "r" / "summary.json").exists()


def test_overwrite_with_a_mistake_keeps_the_old_run(tmp_path, capsys):
    old = tmp_path / "run"
    old.mkdir()
    (old / MARKER).write_text("")  # a fofakd run's folder
    (old / "metrics.jsonl").write_text('{"epoch": 1}\n')
    fails_cleanly(["train", "--model", "resnet_10t", "--overwrite", "--out", str(old)], capsys, "did you mean")
    assert (old / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


@pytest.mark.parametrize("flags,message", [
    (["--epochs", "0"], "config key 'epochs' must be above 0, got 0"),
    (["--epochs", "-1"], "config key 'epochs' must be above 0, got -1"),
    (["--batch-size", "0"], "config key 'batch_size' must be above 0, got 0"),
    (["--lr", "-1"], "config key 'lr' must be above 0, got -1.0"),
    (["--val-fraction", "1.5"], "config key 'val_fraction' must be at least 0 and below 1, got 1.5"),
    (["--smoothing", "-0.1"], "config key 'smoothing' must be at least 0 and below 1, got -0.1"),
])
def test_out_of_range_options_are_refused_before_anything_is_made(flags, message, tmp_path, capsys):
    fails_cleanly(["train", "--model", "resnet10t", "--out", str(tmp_path / "r"), *flags], capsys, message)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    fails_cleanly(["train", "--model", "resnet10t", "--out", str(tmp_path / "r"), "--device", "cuda", *SMALL],
                   capsys, "--device cuda was asked for but this machine has no usable GPU")
    assert not (tmp_path / "r").exists()


def test_version_and_help_defaults(capsys):
    import fofakd

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"fofakd {fofakd.__version__}"
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "training epochs (default: 10)" in text and "batch size per process (default: 128)" in text


def test_a_nan_before_the_first_checkpoint_says_none_was_kept(tmp_path, capsys, monkeypatch):
    import fofakd.methods.source as source

    monkeypatch.setattr(source, "task_loss", lambda *a, **k: torch.tensor(float("nan")))
    err = fails_cleanly(["train", "--model", "resnet10t", "--out", str(tmp_path / "r"), *SMALL], capsys,
                         "no checkpoint was written yet")
    assert "last good checkpoint" not in err


def test_export_refuses_a_folder_and_an_existing_file_unless_told(teacher, tmp_path, capsys):
    out = tmp_path / "s.pt"
    fails_cleanly(["export", "--checkpoint", str(teacher), "--format", "torchscript", "--out", str(tmp_path)],
                   capsys, "is a folder; give the file to write")
    out.write_bytes(b"keep me")
    fails_cleanly(["export", "--checkpoint", str(teacher), "--format", "torchscript", "--out", str(out)], capsys,
                   "already exists; pass --overwrite")
    assert out.read_bytes() == b"keep me"
    assert main(["export", "--checkpoint", str(teacher), "--format", "torchscript", "--out", str(out),
                 "--overwrite"]) == 0
    assert out.read_bytes() != b"keep me"


def test_report_refuses_a_file_as_its_folder(teacher, tmp_path, capsys):
    out = tmp_path / "report.md"
    out.write_text("mine")
    fails_cleanly(["report", str(teacher), "--out", str(out)], capsys, "is a file; the report needs a folder")
    assert out.read_text() == "mine"


def test_weights_follow_the_umask(teacher, tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["export", "--checkpoint", str(teacher), "--format", "safetensors",
                     "--out", str(tmp_path / "s.safetensors")]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "s.safetensors").stat().st_mode & 0o777 == 0o644
    assert (teacher / "student.safetensors").stat().st_mode & 0o044 == 0o044  # others may read a shared run


@pytest.mark.slow
def test_a_live_run_holds_its_folder_and_a_stale_lock_is_cleared(teacher, tmp_path, capsys):
    import socket

    out = tmp_path / "r"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".fofakd.lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        fails_cleanly(_distill_args(teacher, out), capsys, f"is in use by another fofakd run (pid {holder.pid})")
        assert sorted(p.name for p in out.iterdir()) == [".fofakd.lock"]
    finally:
        holder.kill()
        holder.wait()
    assert main(_distill_args(teacher, out)) == 0  # the holder is gone: its lock is stale and cleared
    assert (out / "summary.json").is_file() and not (out / ".fofakd.lock").exists()


@pytest.mark.slow
def test_a_run_that_failed_before_its_first_checkpoint_restarts_with_the_same_command(tmp_path, capsys, monkeypatch):
    import fofakd.methods.source as source

    args = ["train", "--model", "resnet10t", "--out", str(tmp_path / "r"), *SMALL]
    real = source.task_loss
    monkeypatch.setattr(source, "task_loss", lambda *a, **k: torch.tensor(float("nan")))
    fails_cleanly(args, capsys, "no checkpoint was written yet")
    monkeypatch.setattr(source, "task_loss", real)
    assert main(args) == 0
    assert (tmp_path / "r" / "summary.json").is_file()


def _kd_args(teacher, out):
    return ["distill", "--teacher-checkpoint", str(teacher), "--method", "kd", "--student", "resnet10t",
            "--out", str(out), *SMALL]


@pytest.mark.slow
def test_resume_needs_only_the_folder_and_may_extend_the_epochs(teacher, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*_kd_args(teacher, out), "--stop-after", "1"]) == 0
    capsys.readouterr()
    assert main(["distill", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    assert f"resuming {out} at epoch 2, step 4" in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["epochs"]) for r in rows] == [(1, 2), (2, 3), (3, 3)]


@pytest.mark.slow
def test_the_run_directory_may_be_the_argument(teacher, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*_kd_args(teacher, out), "--stop-after", "1"]) == 0
    assert main(["distill", str(out), "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["method"] == "kd"
    fails_cleanly(["distill", str(out), "--out", str(tmp_path / "other"), "--resume"], capsys,
                   "and --out " + str(tmp_path / "other") + " differ; give one of them")


def test_resume_refuses_a_setting_that_differs_from_the_run(teacher, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*_kd_args(teacher, out), "--stop-after", "1"]) == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    fails_cleanly(["distill", "--out", str(out), "--resume", "--lr", "0.1"], capsys,
                   "--lr 0.1 differs from the run's config.yaml (0.002)")
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


@pytest.mark.slow
def test_a_copied_run_resumes_in_its_own_folder(teacher, tmp_path):
    import shutil

    original, copy = tmp_path / "a", tmp_path / "b"
    assert main([*_kd_args(teacher, original), "--stop-after", "1"]) == 0
    shutil.copytree(original, copy)
    assert main(["distill", "--config", str(copy / "config.yaml"), "--resume"]) == 0
    assert (copy / "summary.json").is_file() and not (original / "summary.json").exists()


@pytest.mark.parametrize("flags,message", [
    (["--method-options", "temperature=hot"], "method 'kd' option 'temperature' must be a number, got 'hot'"),
    (["--student-kwargs", "in_chans=3"], "--student-kwargs cannot set in_chans: fofakd sets it from the data"),
])
def test_bad_method_options_and_model_kwargs_are_named(teacher, tmp_path, capsys, flags, message):
    fails_cleanly([*_kd_args(teacher, tmp_path / "r"), *flags], capsys, message)
    assert not (tmp_path / "r").exists()


def test_checkpoints_leave_the_teacher_out_and_a_changed_teacher_is_refused_on_resume(teacher, tmp_path, capsys):
    import shutil

    from safetensors.torch import save_file

    from fofakd.engine.checkpoint import load_checkpoint

    own_teacher, out = tmp_path / "teacher", tmp_path / "r"
    shutil.copytree(teacher, own_teacher)
    assert main([*_kd_args(own_teacher, out), "--stop-after", "1"]) == 0
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert not any(k.startswith("teacher.") for k in state["distiller"])
    assert state["teacher"]["source"] == str(own_teacher) and len(state["teacher"]["sha256"]) == 64
    weights = own_teacher / "student.safetensors"
    changed = {k: v + 1 if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    save_file(changed, str(weights))
    before = (out / "checkpoints" / "last.pt").read_bytes()
    fails_cleanly(["distill", "--out", str(out), "--resume"], capsys,
                   "the teacher's weights (" + str(own_teacher) + ") differ from those this run started with")
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
