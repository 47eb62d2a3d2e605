"""A Hugging Face data set, written to disk by the test as parquet files, trains and evaluates as --data hfds/DIR."""
import json

import pytest
from PIL import Image

from cli_checks import fails_cleanly
from fofakd.cli import main

pytestmark = pytest.mark.slow  # most tests here train runs end to end

datasets = pytest.importorskip("datasets")
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def _write(root, split, per_class):
    names = list(COLOURS)
    images = [Image.new("RGB", (16, 16), tuple(max(0, c - 10 * i) for c in COLOURS[name]))
              for name in names for i in range(per_class)]
    labels = [k for k, _ in enumerate(names) for _ in range(per_class)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    (root / "data").mkdir(parents=True, exist_ok=True)
    table.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hfds") / "colours"
    _write(root, "train", 12)
    _write(root, "test", 5)
    return root


def test_a_hub_data_set_trains_holds_out_validation_and_evaluates(hub_folder, tmp_path, capsys):
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    assert main(["train", "--model", "resnet10t", "--data", f"hfds/{hub_folder}", "--data-dir", str(cache),
                 "--img-size", "32", "--batch-size", "4", "--epochs", "2", "--workers", "0", "--val-fraction", "0.25",
                 "--lr", "0.01", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    spec = json.loads((out / "student.json").read_text())
    assert (summary["test_samples"], summary["test_split"]) == (10, "test")
    assert spec["class_names"] == ["red", "blue"] and spec["data"] == f"hfds/{hub_folder}"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("val_top1" in r for r in rows)  # 6 of 24 train images held out for validation
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out)]) == 0  # the run recorded its data and cache folder
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (scored["top1"], scored["samples"]) == (summary["test_top1"], 10)


def test_a_missing_hub_data_set_is_one_sentence(tmp_path, capsys):
    fails_cleanly(["train", "--model", "resnet10t", "--data", f"hfds/{tmp_path / 'none'}", "--out",
                   str(tmp_path / "r")], capsys, f"could not read --data hfds/{tmp_path / 'none'}")
