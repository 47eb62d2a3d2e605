import json

import pytest
import yaml

from fofakd.cli import main
from fofakd.reports.report import summarise, read_run


def _fake_run(folder, method, top1, seed):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"method": method, "seed": seed, "model": None, "student": "vit_s",
                                                      "teacher": "resnet10t", "data": "fashion-mnist"}))
    rows = [{"epoch": e, "loss": 2.0 / e, "loss_ce": 1.5 / e, "val_top1": top1 - 3 + e, "train_images_per_s": 100.0 * e}
            for e in (1, 2, 3)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"method": method, "test_top1": top1, "train_time_s": 30.0, "extra_parameters": 1_000_000}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_report_groups_seeds_and_draws_plots(tmp_path, capsys):
    runs = [_fake_run(tmp_path / "kd0", "kd", 80.0, 0), _fake_run(tmp_path / "kd1", "kd", 82.0, 1),
            _fake_run(tmp_path / "fofa0", "fofa", 85.0, 0)]
    table = {row["method"]: row for row in summarise([read_run(r) for r in runs])}
    assert table["kd"]["runs"] == 2 and table["kd"]["top1_mean"] == pytest.approx(81.0)
    assert table["kd"]["top1_std"] == pytest.approx(2**0.5)  # sample std of 80 and 82
    assert table["fofa"]["images_per_s"] == pytest.approx(200.0)  # mean over epochs of 100, 200, 300
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "report")]) == 0
    out = tmp_path / "report"
    assert (out / "curves.png").stat().st_size > 5000 and (out / "accuracy.png").stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "| kd | 2 | 81.00 ± 1.41 |" in report and "| fofa | 1 | 85.00 |" in report
    assert json.loads((out / "results.json").read_text())["table"][0]["method"] == "kd"
    assert report.splitlines()[0] == "# kd, fofa: vit_s from resnet10t on fashion-mnist"  # never blank


@pytest.mark.parametrize("values,scale,limits", [
    ([2.4, 0.9, 0.1], "log", None),                     # a falling loss over more than a decade
    ([-1e-8, 2e-8, 0.0], "linear", (-1e-8, 2e-8)),      # a KL of float noise: not hidden by a log axis
    ([2.425], "linear", (2.425 * 0.95, 2.425 * 1.05)),  # one point: room around it, no offset
    ([3.1, 2.9], "linear", None),                       # a narrow positive range stays linear
])
def test_value_axes(values, scale, limits, recwarn):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fofakd.reports.axes import set_value_axis

    fig, ax = plt.subplots()
    ax.plot(range(len(values)), values)
    set_value_axis(ax, values)
    fig.canvas.draw()
    assert ax.get_yscale() == scale
    if limits:
        low, high = ax.get_ylim()
        assert low <= limits[0] + 1e-12 and high >= limits[1] - 1e-12
        assert high - low < 10 * max(abs(v) for v in values)  # the range stays close to the data
    if scale == "linear":  # plain numbers, not "2.425×10⁰"
        assert not any("times" in t.get_text() or "10^" in t.get_text() for t in ax.get_yticklabels())
    assert not [w for w in recwarn if "matplotlib" in str(w.filename)]
    plt.close(fig)


def test_report_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "not a fofakd run directory" in capsys.readouterr().err


def test_attention_shares_sum_to_one_per_image():
    import torch

    from fofakd.methods import build_distiller
    from fofakd.reports.attention import stage_attention
    from pairs import INPUT_SIZE, make_model

    distiller = build_distiller("fofa", teacher=make_model("resnet18"), student=make_model("deit_tiny_patch16_224"),
                                input_size=INPUT_SIZE, dim=32, heads=4).eval()
    shares = stage_attention(distiller, torch.randn(3, *INPUT_SIZE))
    assert shares.shape == (3, 4, 4, 4)
    # softmax rows sum to 1, so the mean attention each region receives sums to 1 over all 64 regions
    assert torch.allclose(shares.sum(dim=(1, 2, 3)), torch.ones(3), atol=1e-5)
