"""Data that would silently train or score the wrong thing is refused or read right."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli_checks import fails_cleanly
from fofakd.cli import main
from fofakd.data.datasets import TensorSplit
from fofakd.data.folder import to_8bit
from fofakd.data.loader import TensorLoader, drops_last_batch


def _folder(root, classes=("a", "b"), per_class=4):
    for split in ("train", "val"):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (16, 16), (label * 200, i * 40, 0)).save(root / split / name / f"{i}.png")


@pytest.mark.parametrize("samples,batch,batches", [(33, 32, [32]), (34, 32, [32, 2]), (64, 32, [32, 32]),
                                                   (1, 1, [1]), (65, 32, [32, 32])])
def test_only_a_last_batch_of_one_is_dropped(samples, batch, batches):
    split = TensorSplit(torch.zeros(samples, 1, 4, 4, dtype=torch.uint8), torch.zeros(samples, dtype=torch.long))
    loader = TensorLoader(split, batch, mean=(0.5,), std=(0.5,), img_size=None, train=True)
    assert [len(x) for x, _ in loader] == batches and len(loader) == len(batches)
    evaluation = TensorLoader(split, batch, mean=(0.5,), std=(0.5,), img_size=None, train=False)
    assert sum(len(x) for x, _ in evaluation) == samples  # evaluation sees every sample
    assert drops_last_batch(samples, batch) == (sum(batches) < samples)


@pytest.mark.slow
def test_a_training_set_that_leaves_one_image_trains(tmp_path):
    out = tmp_path / "r"
    # 33 images at batch 32: the lone last image would stop BatchNorm ("Expected more than 1 value per channel").
    assert main(["train", "--model", "resnet10t", "--train-subset", "33", "--batch-size", "32", "--val-subset", "32",
                 "--test-subset", "32", "--epochs", "1", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_a_folder_with_one_image_left_over_trains_every_batch(tmp_path):
    _folder(tmp_path / "data", per_class=3)  # 6 training images at batch 5: the last batch would hold one
    out = tmp_path / "r"
    assert main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--img-size", "32", "--batch-size", "5", "--epochs", "1", "--workers", "0", "--out", str(out)]) == 0


def test_a_class_with_no_readable_image_is_refused(tmp_path, capsys):
    _folder(tmp_path / "data")
    for image in (tmp_path / "data" / "train" / "b").iterdir():
        image.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    fails_cleanly(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                    "--out", str(tmp_path / "r")], capsys,
                   f"class folder '{tmp_path / 'data' / 'train' / 'b'}' has no readable image (all 4 failed")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_eval_refuses_data_with_other_class_names(tmp_path, capsys):
    _folder(tmp_path / "data")
    out = tmp_path / "r"
    assert main(["train", "--model", "resnet10t", "--data", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--img-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0", "--out", str(out)]) == 0
    _folder(tmp_path / "other", classes=("a", "c"))
    fails_cleanly(["eval", "--checkpoint", str(out), "--data", "imagefolder", "--data-dir", str(tmp_path / "other")],
                   capsys, "the data's classes differ from those the student was trained on (class 1 is 'c' here, "
                           "'b' in training)")


def test_sixteen_bit_and_float_images_are_scaled_not_clipped():
    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert sixteen.mode.startswith("I")
    assert np.asarray(to_8bit(sixteen)).tolist() == [[0, 128, 255]]  # Pillow's own convert makes these 0, 255, 255
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(to_8bit(unit)).tolist() == [[0, 128, 255]]  # Pillow's own: 0, 0, 1 (almost black)
    eight_bit_range = Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32))
    assert np.asarray(to_8bit(eight_bit_range)).tolist() == [[0, 100, 255]]
    with pytest.raises(ValueError, match="float pixels from -1 to 300"):
        to_8bit(Image.fromarray(np.array([[-1.0, 300.0]], dtype=np.float32)))
    rgb = Image.new("RGB", (2, 2), (10, 20, 30))
    assert to_8bit(rgb) is rgb


def test_a_sixteen_bit_png_trains_with_its_real_contrast(tmp_path):
    from fofakd.data.folder import load_rgb

    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 16384, dtype=np.uint16)).save(path)
    assert np.asarray(load_rgb(str(path)))[0, 0].tolist() == [64, 64, 64]  # a quarter grey, not white
