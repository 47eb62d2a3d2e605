"""Loaders: validation carving, sharding, seeded augmentation, mixup targets, image folders."""
import pytest
import torch
from PIL import Image

from fofakd.cli import main
from fofakd.data import TensorSplit, build_data
from fofakd.data.augment import AugmentConfig, augment_uint8, random_crop
from fofakd.data.build import carve_validation
from fofakd.data.loader import TensorLoader
from fofakd.classification.config import build_config


def _split(n=20):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return TensorSplit(images, torch.arange(n) % 3)


def test_validation_is_carved_from_train_without_overlap():
    split = _split(20)
    train, val = carve_validation(split, 0.25, seed=1)
    assert len(train) == 15 and len(val) == 5
    seen = set(train.images[:, 0, 0, 0].tolist()) | set(val.images[:, 0, 0, 0].tolist())
    assert seen == set(range(20))
    again, _ = carve_validation(split, 0.25, seed=1)
    assert torch.equal(again.images, train.images)


def test_shards_cover_the_epoch_and_repeat_with_the_seed():
    split = _split(10)
    kwargs = dict(batch_size=3, mean=(0.0,), std=(1.0,), img_size=None, train=True, seed=7, world_size=2)
    ranks = [TensorLoader(split, rank=r, **kwargs) for r in (0, 1)]
    ids = [torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in loader]) for loader in ranks]
    assert len(ids[0]) == len(ids[1]) == 5
    assert set(torch.cat(ids).tolist()) == set(range(10))
    repeat = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in TensorLoader(split, rank=0, **kwargs)])
    assert torch.equal(repeat, ids[0])
    ranks[0].set_epoch(1)
    other = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in ranks[0]])
    assert not torch.equal(other, ids[0])


def test_random_crop_takes_a_window_of_the_padded_image():
    images = torch.randint(1, 255, (8, 2, 6, 5), dtype=torch.uint8)
    out = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(8):
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 5])]
        assert windows, "each crop must be a window of its own padded image"
        offsets.add(windows[0])
    assert len(offsets) > 1, "offsets are drawn per sample"


def test_mixup_gives_soft_targets():
    cfg = build_config({"train_subset": 64, "val_subset": 16, "test_subset": 16, "batch_size": 16,
                        "mixup": 0.8, "cutmix": 1.0, "smoothing": 0.1})
    data = build_data(cfg)
    x, y = next(iter(data.train))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16, 10)
    assert torch.allclose(y.sum(dim=1), torch.ones(16))
    assert ((y > 0.02).sum(dim=1) >= 2).any(), "mixed samples carry two labels"


def test_resized_crop_zooms_in_per_sample_and_repeats_with_the_generator():
    # A horizontal ramp: a crop of area fraction a, resized back, spans a narrower range of columns.
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8).view(1, 1, 1, 32).expand(6, 3, 32, 32).contiguous()
    cfg = AugmentConfig(rrc_scale=0.08)
    out = augment_uint8(ramp, cfg, torch.Generator().manual_seed(3))
    again = augment_uint8(ramp, cfg, torch.Generator().manual_seed(3))
    assert out.shape == ramp.shape and torch.equal(out, again)
    spans = (out[:, 0, 0, -1].float() - out[:, 0, 0, 0].float()).abs()
    assert (spans < 250).all(), "every image is a zoomed-in crop"
    assert len(set(spans.tolist())) > 1, "crops are drawn per sample"


def _write_folder(root, classes=("cat", "dog"), per_class=6):
    for split in ("train", "val"):
        for i, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j in range(per_class):
                mode = ("RGB", "L", "RGBA")[j % 3]  # grey-scale and RGBA images are converted to RGB
                Image.new(mode, (40, 36), color=(i * 120 + j * 10,) * len(mode)).save(folder / f"{j}.png")


def test_image_folder_run(tmp_path):
    _write_folder(tmp_path / "data")
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--img-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0", "--out", str(out)])
    assert code == 0
    import json

    spec = json.loads((out / "student.json").read_text())
    assert (spec["num_classes"], spec["in_chans"], spec["img_size"]) == (2, 3, 32)
    assert json.loads((out / "summary.json").read_text())["test_samples"] == 12


def test_image_folder_batches_get_mixup_targets(tmp_path):
    _write_folder(tmp_path / "data", per_class=8)
    cfg = build_config({"data": "imagefolder", "data_dir": str(tmp_path / "data"), "img_size": 32, "batch_size": 8,
                        "workers": 0, "mixup": 0.8, "cutmix": 1.0, "smoothing": 0.1, "seed": 0})
    data = build_data(cfg)
    x, y = next(iter(data.train))
    assert data.mixup and x.shape == (8, 3, 32, 32) and y.shape == (8, 2)
    assert torch.allclose(y.sum(dim=1), torch.ones(8))
    _, plain = next(iter(data.val))
    assert plain.dtype == torch.long, "evaluation batches keep hard labels"


def test_missing_image_folder_is_named(tmp_path, capsys):
    assert main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "run")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_recipe_options_run_in_bf16(tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet10t", "--train-subset", "64", "--val-subset", "32", "--test-subset", "32",
                 "--batch-size", "16", "--epochs", "2", "--opt", "sgd", "--lr", "0.05", "--sched", "step",
                 "--decay-epochs", "1", "--warmup-epochs", "1", "--clip-grad", "1.0", "--amp", "bf16",
                 "--channels-last", "--mixup", "0.8", "--cutmix", "1.0", "--ema", "--out", str(out)])
    assert code == 0
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["lr"] > rows[1]["lr"] and "ema_val_top1" in rows[1]
    assert json.loads((out / "summary.json").read_text())["weights"] == "ema"


@pytest.mark.slow
def test_image_folder_run_repeats_and_resumes_exactly(tmp_path):
    # Noise images, so that timm's random crops and flips change what the model sees; without workers they draw
    # from this process's Python generator, which fofakd must seed per epoch (and restore on resume).
    import random

    import numpy as np
    from safetensors.torch import load_file

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for j in range(6):
                Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(
                    tmp_path / "data" / split / name / f"{j}.png")
    common = ["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
              "--img-size", "32", "--batch-size", "4", "--epochs", "2", "--workers", "0"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    random.seed(1)
    assert main([*common, "--out", str(whole)]) == 0
    random.seed(2)  # another state of the process's generator must not change the run
    assert main([*common, "--out", str(parts), "--stop-after", "1"]) == 0
    random.random()
    assert main([*common, "--out", str(parts), "--resume"]) == 0
    a, b = load_file(str(whole / "student.safetensors")), load_file(str(parts / "student.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
