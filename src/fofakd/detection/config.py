"""The options of `fofakd detect train` and `fofakd detect distill`: the shared run options plus detection data."""
from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import DISTILL, TrainingConfig, option
from ..options import POSITIVE

DATA_SETS = ("shapes", "coco")
DEFAULT_SPLITS = {"shapes": ("train", "val"), "coco": ("train2017", "val2017")}


@dataclass
class DetectionConfig(TrainingConfig):
    """Every option of `fofakd detect train` and `fofakd detect distill` (YAML keys use the same names).

    `model`, `teacher` and `student` name the detectors' backbones: a timm model, or `tv/resnet18`-style names for
    torchvision's ResNet FPN backbones. The recipe defaults follow torchvision's Faster R-CNN reference (SGD, lr 0.02
    for 16 images, weight decay 1e-4), scaled to 4 images per batch.
    """

    task: str = option("detection", "the run's task", commands=())
    # recipe defaults for Faster R-CNN
    epochs: int = option(12, "training epochs")
    batch_size: int = option(4, "images per batch per process")
    eval_batch_size: int = option(8, "evaluation images per batch per process")
    opt: str = option("sgd", "optimiser (any timm optimiser name, e.g. sgd, adamw)")
    lr: float = option(0.005, "peak learning rate (per process batch)")
    min_lr: float = option(0.0, "final learning rate of the schedule")
    weight_decay: float = option(1e-4, "weight decay (not applied to norms and biases)")
    warmup_epochs: int = option(1, "linear warm-up epochs")
    warmup_lr: float = option(1e-5, "learning rate at the start of warm-up")
    clip_grad: float | None = option(10.0, "clip the gradient norm to this value (early RPN losses can spike)")
    # data
    data: str = option("shapes", "data set: built-in synthetic shapes, or a COCO-format folder", choices=DATA_SETS)
    data_dir: str | None = option(None, "COCO-format folder: annotations/instances_<split>.json with <split>/ images, "
                                      "or <split>/annotations.json with <split>/images/ (shapes: where the set is "
                                      "written; default ~/.cache/fofakd/shapes)")
    train_split: str | None = option(None, "training split name (default: train, or train2017 for coco)")
    val_split: str | None = option(None, "validation split name (default: val, or val2017 for coco)")
    shapes_images: int = option(256, "synthetic training images (the validation split gets a quarter as many)",
                              bounds=POSITIVE)
    shapes_size: int = option(128, "side of the synthetic images in pixels", bounds=POSITIVE)
    train_subset: int | None = option(None, "use only the first N training images", bounds=POSITIVE)
    val_subset: int | None = option(None, "use only the first N validation images", bounds=POSITIVE)
    img_size: int | None = option(None, "resize every image to SIZE x SIZE (default: the synthetic images' side for "
                                      "shapes, --min-size/--max-size for coco)", bounds=POSITIVE)
    min_size: int = option(800, "shorter image side after resizing, without --img-size", bounds=POSITIVE)
    max_size: int = option(1333, "longest image side after resizing, without --img-size", bounds=POSITIVE)
    # detectors
    detector_options: dict = option({}, "student (or model) detector options, KEY=VALUE: fpn_channels, "
                                      "representation_size or torchvision FasterRCNN arguments")
    teacher_detector_options: dict = option({}, "teacher detector options (default: those of its fofakd run)", DISTILL)

    def splits(self) -> tuple[str, str]:
        """(training split, validation split) names."""
        train, val = DEFAULT_SPLITS[self.data]
        return self.train_split or train, self.val_split or val

    def input_size(self) -> dict:
        """The detectors' resize options: a fixed square with --img-size, else shorter/longer side bounds."""
        size = self.img_size or (self.shapes_size if self.data == "shapes" else None)
        if size:
            return {"min_size": size, "max_size": size, "fixed_size": (size, size)}
        return {"min_size": self.min_size, "max_size": self.max_size}

