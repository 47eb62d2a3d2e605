"""Two gloo processes on the CPU through torchrun."""
import os
import subprocess
import sys

import pytest
import torch

from fofakd.cli import main

pytestmark = pytest.mark.slow  # end-to-end runs; CI runs them, `-m 'not slow'` skips them locally

SMALL = ["--train-subset", "128", "--val-subset", "64", "--test-subset", "64", "--epochs", "2"]


def test_two_process_distillation(tmp_path):
    teacher = tmp_path / "teacher"
    assert main(["train", "--model", "resnet10t", "--out", str(teacher), *SMALL, "--batch-size", "32",
                 "--epochs", "1"]) == 0
    out = tmp_path / "student"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fofakd.cli", "distill", "--teacher-checkpoint", str(teacher), "--student", "resnet10t",
           "--method-options", "dim=64", "--out", str(out),
           "--batch-size", "16", *SMALL]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"config.yaml", "metrics.jsonl", "summary.json", "student.safetensors", "student.json"} <= {
        p.name for p in out.iterdir()}
    assert result.stdout.count("test top-1") == 1, "only rank 0 reports"
    rank0 = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["distiller"]
    rank1 = torch.load(out / "checkpoints" / "last.rank1.pt", weights_only=True)["distiller"]
    student = [k for k in rank0 if k.startswith("student.")]
    assert student and all(torch.equal(rank0[k].float(), rank1[k].float()) for k in student), \
        "both processes must hold the same student (weights and averaged BatchNorm statistics)"
    feedback = [k for k in rank0 if k.endswith(".feedback")]
    assert feedback and not all(torch.equal(rank0[k], rank1[k]) for k in feedback), \
        "FOFA feedback is per process: each rank sees other images"
