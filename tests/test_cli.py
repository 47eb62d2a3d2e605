import json
import os
import subprocess
import sys

import pytest

FOFAKD = [sys.executable, "-m", "fofakd.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(*args):
    return subprocess.run([*FOFAKD, *args], capture_output=True, text=True, env=ENV, timeout=300)


def test_help_lists_commands():
    result = _run("--help")
    assert result.returncode == 0
    assert "methods" in result.stdout and "stages" in result.stdout


@pytest.mark.slow
def test_methods_lists_every_method_with_its_options():
    result = _run("methods")
    assert result.returncode == 0
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) >= {"scratch (classification, detection)", "kd (classification, detection)",
                          "dkd (classification, detection)", "dist (classification, detection)",
                          "fitnet (classification, detection)", "ofa (classification)", "rkd (classification)",
                          "crd (classification)", "rsd (classification)", "fofa (classification, detection)"}
    assert "se_mode='bias'" in lines["fofa (classification, detection)"]
    assert "gamma=1.0" in lines["ofa (classification)"]
    assert "rsd_weight=0.1" in lines["rsd (classification)"] and "kappa=0.01" in lines["rsd (classification)"]


@pytest.mark.slow
def test_stages_prints_the_discovered_stages():
    result = _run("stages", "--model", "deit_tiny_distilled_patch16_224", "--img-size", "64", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["num_prefix_tokens"] == 2
    assert [s["prompt_before"] for s in info["stages"]] == ["blocks.0", "blocks.2", "blocks.4", "blocks.10"]
    assert info["stages"][0]["shape"] == [16, 192]


@pytest.mark.slow
def test_stages_show_the_model_you_would_train_as_a_table():
    result = _run("stages", "--model", "deit_tiny_patch16_224", "--img-size", "28", "--in-chans", "1",
                  "--model-kwargs", "patch_size=4", "depth=4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "deit_tiny_patch16_224 patch_size=4 depth=4 at 1x28x28 (1 prefix tokens)"
    assert len(lines) == 6 and lines[2].split()[-1] == "49x192"  # a 7x7 grid of 4-px patches, not 1 token
    plain = _run("stages", "--model", "deit_tiny_patch16_224", "--img-size", "28", "--in-chans", "1")
    assert "1x192" in plain.stdout and "note: a stage grid is 1x1" in plain.stdout


@pytest.mark.slow
def test_user_mistake_gives_one_line_and_exit_2():
    result = _run("stages", "--model", "resnet_18")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean resnet18" in lines[0]
