"""benchmarks/gpu_check.py --smoke: the GPU check's every section on the CPU, so it cannot rot between GPU slots."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about a minute: a torchrun kill-and-resume and a detection step

ROOT = Path(__file__).parent.parent


def test_smoke_check_runs_every_section_and_holds_its_invariants(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["environment"]["device"] == "cpu"

    precision = report["precision"]["modes"]
    assert set(precision) == {"fp32", "bf16", "fp16"}
    assert {"loss_ce", "loss_kd", "loss_fd", "loss_reg"} <= set(precision["fp32"]["parts"])
    for mode in ("bf16", "fp16"):  # the same step from the same state: only rounding may differ
        assert precision[mode]["within_tolerance"] and precision[mode]["finite_grads"], (mode, precision[mode])
        assert 0 < precision[mode]["max_rel_diff"] < 0.05
    scaler = report["precision"]["fp16_scaler"]
    assert scaler["steps"] == 3 and scaler["finite_losses"] and scaler["scale"] > 0

    methods = ["scratch", "kd", "fitnet", "ofa", "rsd", "fofa"]
    assert len(report["throughput"]) == 2
    for pair in report["throughput"].values():
        assert pair["errors"] == {} and list(pair["step_s"]) == methods
        assert all(t > 0 for t in pair["step_s"].values())
        assert pair["fofa_over_kd"] == pytest.approx(pair["step_s"]["fofa"] / pair["step_s"]["kd"])
    assert report["goals"]["fofa_over_kd"] == {k: v["fofa_over_kd"] for k, v in report["throughput"].items()}

    ddp = report["distributed"]
    assert ddp["backend"] == "gloo" and ddp["killed_rc"] != 0 and ddp["resumed_rc"] == 0
    assert ddp["equal"] and ddp["max_abs_weight_diff"] == 0.0

    detection = report["detection"]
    assert detection["ok"] and {"loss_kd", "loss_fd", "loss_reg", "loss_classifier"} <= set(detection["parts"])

    markdown = (tmp_path / "gpu_check.md").read_text()
    for heading in ("## Precision", "## Throughput, eager", "## Distributed", "## Detection"):
        assert heading in markdown
