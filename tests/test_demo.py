import json

import pytest

from fofakd.cli import main
from fofakd.demo import _teacher

pytestmark = pytest.mark.slow  # end-to-end runs; CI runs them, `-m 'not slow'` skips them locally


def test_quick_demo_compares_the_methods_and_reuses_its_teacher(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    for name in ("report.md", "results.json", "curves.png", "accuracy.png", "attention.png"):
        assert (out / name).is_file()
    table = {row["method"]: row for row in json.loads((out / "results.json").read_text())["table"]}
    assert list(table) == ["scratch", "kd", "ofa", "fofa"]
    assert table["kd"]["extra_parameters"] == 0 and table["fofa"]["extra_parameters"] > table["ofa"]["extra_parameters"] > 0
    assert all(10.0 < row["top1_mean"] <= 100.0 for row in table.values())  # better than chance on 10 classes
    teacher = out / "teacher-quick"
    assert json.loads((teacher / "summary.json").read_text())["test_top1"] > 50.0
    stamp = (teacher / "student.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert _teacher("quick", out) == teacher
    assert "reusing" in capsys.readouterr().out
    assert (teacher / "student.safetensors").stat().st_mtime_ns == stamp
    assert "| fofa | 1 |" in (out / "report.md").read_text()
