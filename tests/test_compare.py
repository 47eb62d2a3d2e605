"""`fofakd compare`: paired seeds, skipping and resuming, refused changes, failed runs, statistics, parallel runs."""
import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from safetensors.torch import load_file

from fofakd.cli import main
from fofakd.compare.stats import paired, t_quantile

SMALL = ["--train-subset", "96", "--val-subset", "64", "--test-subset", "64", "--batch-size", "32",
         "--eval-batch-size", "64", "--epochs", "2", "--lr", "0.002"]


def test_progress_lines_from_parallel_runs_never_join(capsys):
    # print() writes a line's text and its newline separately: two run threads printing at once joined their lines
    # (with print, and the interpreter switching threads often, this loop joins hundreds of them).
    from fofakd.compare.runner import echo_line

    def report(name):
        for i in range(3000):
            echo_line(f"compare: start {name}/seed{i}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=report, args=(name,)) for name in ("kd", "fofa")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6000 and all(line.count("compare: start") == 1 for line in lines)


def test_paired_statistics_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 4, 9, 30):
        assert t_quantile(0.975, dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-8)
    a, b = {0: 75.1, 1: 74.8, 2: 75.6, 3: 74.9}, {0: 74.0, 1: 74.2, 2: 74.9, 3: 75.0}
    got = paired(a, b)
    diffs = [a[s] - b[s] for s in range(4)]
    low, high = stats.t.interval(0.95, 3, loc=sum(diffs) / 4, scale=stats.sem(diffs))
    assert got["differences"] == pytest.approx(diffs)
    assert got["interval"] == pytest.approx([low, high], rel=1e-8)
    assert got["verdict"] == ("leads" if low > 0 else "trails" if high < 0 else "cannot tell")
    assert paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.1, 2: 4.05})["verdict"] == "trails"
    assert paired({0: 1.0}, {0: 0.0})["verdict"] == "cannot tell (one seed)"
    # Two seeds that tie (accuracies are quantised): 87.75 - 87.30 and 88.00 - 87.55 differ only by float rounding,
    # and a zero-width interval would claim certainty from no measured spread.
    tied = paired({0: 87.75, 1: 88.00}, {0: 87.30, 1: 87.55})
    assert tied["interval"] is None and tied["verdict"] == "cannot tell (the same difference on every seed)"
    assert tied["mean"] == pytest.approx(0.45)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--model", "resnet10t", "--out", str(out), *SMALL]) == 0
    return out


def _compare(teacher, out, *extra):
    return ["compare", "--teacher-checkpoint", str(teacher), "--student", "resnet10t", "--out", str(out), *SMALL,
            *extra]


@pytest.mark.slow
def test_a_seed_gives_every_method_the_same_student_and_data_order(teacher, tmp_path):
    from fofakd.compare.plan import Comparison
    from fofakd.classification.config import build_config
    from fofakd.classification.training import ClassificationTask
    from fofakd.engine.trainer import Trainer

    options = {"teacher_checkpoint": str(teacher), "student": "resnet10t", "train_subset": 96, "batch_size": 32}
    comparison = Comparison(tmp_path, ["scratch", "kd", "fofa"], 2, options)
    built = {}
    for method, seed in comparison.runs():
        trainer = Trainer(build_config(comparison.run_options(method, seed)), "distill", ClassificationTask)
        trainer.run_dir.release()
        loader = trainer.task.train_loader
        loader.set_epoch(0)  # as the trainer's first epoch does
        built[method, seed] = (trainer.distiller.student.state_dict(), [y for _, y in loader])
    for seed in (0, 1):
        weights, labels = built["scratch", seed]
        for method in ("kd", "fofa"):
            other_weights, other_labels = built[method, seed]
            assert all(torch.equal(weights[k], other_weights[k]) for k in weights)
            assert all(torch.equal(a, b) for a, b in zip(labels, other_labels))
    # and another seed is another start
    assert not all(torch.equal(v, built["scratch", 1][0][k]) for k, v in built["scratch", 0][0].items())


@pytest.mark.slow
def test_compare_reports_skips_finished_runs_and_refuses_a_changed_setting(teacher, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(_compare(teacher, out, "--methods", "scratch,kd", "--seeds", "2")) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"scratch", "kd"} and results["runs_finished"] == 4
    for method in ("scratch", "kd"):
        summaries = [json.loads((out / method / f"seed{seed}" / "summary.json").read_text()) for seed in (0, 1)]
        for seed, summary in enumerate(summaries):
            assert results["methods"][method]["test_by_seed"][str(seed)] == summary["test_top1"]
        assert results["methods"][method]["peak_memory_mb"] == max(s["peak_memory_mb"] for s in summaries)
    reference = results["reference"]
    other = "kd" if reference == "scratch" else "scratch"
    diffs = results["differences"][other]["val"]["differences"]
    by_seed = {m: results["methods"][m]["val_by_seed"] for m in ("scratch", "kd")}
    assert diffs == pytest.approx([by_seed[other][s] - by_seed[reference][s] for s in ("0", "1")])
    assert (out / "report.md").is_file() and (out / "curves.png").is_file()
    stamp = (out / "kd" / "seed1" / "summary.json").stat().st_mtime
    capsys.readouterr()
    assert main(_compare(teacher, out, "--methods", "scratch,kd", "--seeds", "2")) == 0
    assert "4 already done, 0 to run" in capsys.readouterr().out
    assert (out / "kd" / "seed1" / "summary.json").stat().st_mtime == stamp
    assert main(_compare(teacher, out, "--methods", "scratch,kd", "--seeds", "2", "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "lr 0.002, not 0.01" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_a_failed_run_is_reported_and_the_others_go_on(teacher, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(_compare(teacher, out, "--methods", "kd,fofa", "--seeds", "1", "--method-options",
                         "fofa:num_queries=7"))
    assert code == 2
    captured = capsys.readouterr()
    assert "FAILED fofa/seed0: num_queries=7" in captured.out and "1 of 2 runs failed (fofa/seed0)" in captured.err
    assert (out / "kd" / "seed0" / "summary.json").is_file()
    assert set(json.loads((out / "results.json").read_text())["methods"]) == {"kd"}


def _run_cli(args, **env):
    return subprocess.run([sys.executable, "-m", "fofakd.cli", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env})


@pytest.mark.slow
def test_a_killed_compare_resumes_to_the_uninterrupted_result(teacher, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    args = ["--methods", "kd,fitnet", "--seeds", "1"]
    assert _run_cli(_compare(teacher, whole, *args)).returncode == 0
    # 96 images at batch 32: 3 steps an epoch, 6 a run. Step 10 of the process is the first step of fitnet's (the
    # second run's) second epoch: the restart skips kd and resumes fitnet from its first epoch's checkpoint.
    killed = _run_cli(_compare(teacher, parts, *args), FOFAKD_FAULT="kill-at-step:10")
    assert killed.returncode != 0 and (parts / "kd" / "seed0" / "summary.json").is_file()
    assert not (parts / "fitnet" / "seed0" / "summary.json").is_file()
    again = _run_cli(_compare(teacher, parts, *args))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 already done, 1 to run" in again.stdout and "start fitnet/seed0 (resuming)" in again.stdout
    for method in ("kd", "fitnet"):
        a = load_file(str(whole / method / "seed0" / "student.safetensors"))
        b = load_file(str(parts / method / "seed0" / "student.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), method
    a, b = (json.loads((d / "results.json").read_text())["methods"] for d in (whole, parts))
    for method in ("kd", "fitnet"):
        assert a[method]["val_by_seed"] == b[method]["val_by_seed"]
        assert a[method]["test_by_seed"] == b[method]["test_by_seed"]


@pytest.mark.slow
def test_parallel_two_runs_at_a_time(teacher, tmp_path):
    out = tmp_path / "cmp"
    result = _run_cli(_compare(teacher, out, "--methods", "scratch,kd", "--seeds", "1", "--parallel", "2"))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("compare: ")]
    first_done = next(i for i, line in enumerate(lines) if line.startswith("compare: done"))
    assert sum(line.startswith("compare: start") for line in lines[:first_done]) == 2, result.stdout  # both at once
    assert json.loads((out / "results.json").read_text())["runs_finished"] == 2
    for method in ("scratch", "kd"):
        assert (out / ".compare" / f"{method}-seed0.log").read_text().count("test top-1") == 1


@pytest.mark.slow
def test_plan_prints_every_run_and_a_prediction_and_starts_nothing(teacher, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(_compare(teacher, out, "--methods", "kd,fofa", "--seeds", "2", "--method-options", "fofa:dim=64",
                         "--plan")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" ")[0] for line in lines[:4]] == ["kd/seed0", "fofa/seed0", "kd/seed1", "fofa/seed1"]
    assert "--method fofa --method-options dim=64 --seed 1" in lines[3] and lines[4].startswith("predicted: ")
    assert not out.exists()
