"""fofakd never changes a file it did not write, never leaves half a file, and reports only what it says."""
import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_checks import fails_cleanly
from fofakd.cli import main
from fofakd.engine.run_dir import MARKER

pytestmark = pytest.mark.slow  # most tests here train runs end to end

TINY = ["--train-subset", "64", "--val-subset", "32", "--test-subset", "32", "--batch-size", "32",
        "--eval-batch-size", "32", "--lr", "0.002"]


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--model", "resnet10t", "--out", str(out), *TINY, "--epochs", "1"]) == 0
    return out


def test_overwrite_replaces_only_fofakds_own_files(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "notes.txt").write_text("mine\n")
    (run / "plots").mkdir()
    (run / "plots" / "loss.png").write_bytes(b"png")
    old_student = (run / "student.safetensors").read_bytes()
    assert main(["train", "--model", "resnet10t", "--out", str(run), *TINY, "--epochs", "1", "--seed", "7",
                 "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine\n" and (run / "plots" / "loss.png").read_bytes() == b"png"
    assert (run / "student.safetensors").read_bytes() != old_student  # the run itself was replaced


def test_a_run_beside_the_users_files_needs_overwrite_and_keeps_them(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    fails_cleanly(["train", "--model", "resnet10t", "--out", str(folder), *TINY, "--epochs", "1"], capsys,
                   "holds files fofakd did not write (data.csv)")
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]
    assert main(["train", "--model", "resnet10t", "--out", str(folder), *TINY, "--epochs", "1", "--overwrite"]) == 0
    assert (folder / "data.csv").read_text() == "a,b\n" and (folder / MARKER).is_file()
    assert (folder / "summary.json").is_file()


def test_the_saved_config_does_not_carry_this_invocations_flags(finished):
    import yaml

    saved = yaml.safe_load((finished / "config.yaml").read_text())
    assert not {"overwrite", "resume", "stop_after"} & set(saved) and saved["out"] == str(finished)


def test_a_lost_last_checkpoint_points_at_best_and_keeps_it(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "checkpoints" / "last.pt").unlink()
    before = _contents(run)
    fails_cleanly(["train", "--out", str(run), "--resume"], capsys, "has no checkpoints/last.pt to resume, but has "
                   "best.pt: copy it to last.pt")
    # Following the first message's old advice ("start without --resume") no longer costs best.pt either.
    fails_cleanly(["train", "--model", "resnet10t", "--out", str(run), *TINY], capsys, "already holds a run")
    assert _contents(run) == before


def test_resuming_with_fewer_epochs_than_trained_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet10t", "--out", str(run), *TINY, "--epochs", "3", "--stop-after",
                 "2"]) == 0
    before = _contents(run)
    fails_cleanly(["train", str(run), "--resume", "--epochs", "1"], capsys,
                   "--epochs 1 is fewer than the 2 epochs")
    assert _contents(run) == before and not (run / ".fofakd.lock").exists()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "safetensors"])
def test_a_failed_export_leaves_no_partial_file_and_the_old_one_intact(finished, tmp_path, capsys, monkeypatch,
                                                                       fmt):
    old = tmp_path / "student.out"
    old.write_bytes(b"the valid old export")
    real_write = Path.write_bytes

    def full_disk(path, data):  # half the bytes land, then the disk is full
        real_write(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    fails_cleanly(["export", "--checkpoint", str(finished), "--format", fmt, "--out", str(old), "--overwrite"],
                   capsys, f"could not write '{old}' (No space left on device); the previous file is unchanged")
    assert old.read_bytes() == b"the valid old export"
    fresh = tmp_path / "fresh.out"
    fails_cleanly(["export", "--checkpoint", str(finished), "--format", fmt, "--out", str(fresh)],
                   capsys, "nothing was left behind")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.out"]


def _small_filesystem(path: Path, size: str):
    """A tmpfs of `size` mounted at `path` (root only), or a skip."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "safetensors"])
def test_a_full_disk_during_export_says_so_in_one_sentence(finished, tmp_path, capsys, fmt):
    disk = tmp_path / "disk"
    _small_filesystem(disk, "64k")
    try:
        old = disk / "student.out"
        old.write_bytes(b"the valid old export")
        fails_cleanly(["export", "--checkpoint", str(finished), "--format", fmt, "--out", str(old), "--overwrite"],
                       capsys, f"could not write '{old}'")
        assert old.read_bytes() == b"the valid old export"
        assert sorted(p.name for p in disk.iterdir()) == ["student.out"]  # no temporary file left
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # lazily: detached even while a handle is open


def test_a_full_disk_during_a_run_says_what_was_kept(tmp_path, capsys):
    disk = tmp_path / "disk"
    _small_filesystem(disk, "64k")
    try:
        run = disk / "run"
        fails_cleanly(["train", "--model", "resnet10t", "--out", str(run), *TINY, "--epochs", "1"], capsys,
                       f"could not write '{run / 'checkpoints' / 'last.pt'}' (No space left on device); no checkpoint "
                       "was written yet, so the run starts again with the same command")
        assert not list(run.rglob("*.tmp")) and not (run / ".fofakd.lock").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)  # lazily: detached even while a handle is open


def test_report_scores_only_finished_runs_and_lists_the_rest(finished, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    assert main(["train", "--model", "resnet10t", "--out", str(unfinished), *TINY, "--epochs", "2",
                 "--stop-after", "1"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(finished), str(unfinished), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    summary = json.loads((finished / "summary.json").read_text())
    assert [(row["runs"], row["top1_all"]) for row in results["table"]] == [(1, [summary["test_top1"]])]
    assert [r["finished"] for r in results["runs"]] == [True, False]
    assert f"{unfinished} (scratch): epoch 1 of 2" in (out / "report.md").read_text()
    # A second report into the same folder replaces the first: it is fofakd's own.
    assert main(["report", str(finished), "--out", str(out)]) == 0
