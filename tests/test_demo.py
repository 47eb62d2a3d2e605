import json

import pytest
from safetensors.torch import save_file

from fofakd import demo
from fofakd.cli import main

pytestmark = pytest.mark.slow  # end-to-end runs; CI runs them, `-m 'not slow'` skips them locally


def test_quick_demo_distils_from_the_shipped_teacher_in_the_benchmark_regime(tmp_path, capsys):
    shipped = demo.shipped_teacher()
    assert shipped is not None and shipped[1] > 90.0  # the source tree ships the benchmark's ResNet teacher
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    for name in ("report.md", "results.json", "curves.png", "accuracy.png", "attention.png"):
        assert (out / name).is_file()
    table = {row["method"]: row for row in json.loads((out / "results.json").read_text())["table"]}
    assert list(table) == ["scratch", "fitnet", "fofa"]  # --quick leaves KD out
    assert table["scratch"]["extra_parameters"] == 0
    assert table["fofa"]["extra_parameters"] > table["fitnet"]["extra_parameters"] > 0  # FitNet's projector
    # Numbers that mean something: every student far above chance (10 %). 376 steps from a 93 % teacher gave
    # 55.8 (FOFA), 60.3 (scratch) and 65.6 % (FitNet) on this machine; a broken distiller or data pipeline stays
    # near 10-30 %.
    assert all(row["top1_mean"] > 50.0 for row in table.values()), table
    spec = json.loads((out / "quick" / "fofa" / "student.json").read_text())
    assert spec["img_size"] == 32 and spec["kwargs"]["patch_size"] == 4  # an 8x8 token grid
    report = (out / "report.md").read_text()
    assert f"{shipped[1]:.2f} % test top-1" in report and "| fofa | 1 |" in report


def test_without_shipped_weights_the_demo_trains_its_teacher_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "SHIPPED_TEACHERS", tmp_path / "nothing")
    folder = tmp_path / "teacher-quick"
    folder.mkdir()
    save_file({}, str(folder / "student.safetensors"))
    (folder / "summary.json").write_text(json.dumps({"test_top1": 88.5}))
    assert demo._teacher("quick", tmp_path) == (folder, 88.5)  # a finished teacher is reused, not retrained
    assert "reusing" in capsys.readouterr().out
