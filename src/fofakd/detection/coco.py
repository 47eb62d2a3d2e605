"""COCO-format detection data (an annotation JSON and an image folder) and COCO mAP, both through pycocotools."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..errors import FofakdError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _quiet_coco(annotation_file: str | Path):
    from pycocotools.coco import COCO

    path = Path(annotation_file)
    if not path.is_file():
        raise FofakdError(f"annotation file '{path}' does not exist; pass a COCO-format JSON file.")
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(str(path))
        except (ValueError, KeyError, TypeError) as err:
            raise FofakdError(f"'{path}' is not a COCO-format annotation file ({err}); check its contents.") from None


class CocoDetection(torch.utils.data.Dataset):
    """Images with their boxes (x1, y1, x2, y2) and labels; label k is the k-th category id in sorted order, plus one
    (0 is the background class of torchvision's detectors).

    Args:
        image_dir: Folder the annotation's `file_name`s are relative to.
        annotation_file: COCO-format JSON.
        hflip: Probability of a horizontal flip (training augmentation).
    """

    def __init__(self, image_dir: str | Path, annotation_file: str | Path, hflip: float = 0.0):
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FofakdError(f"image folder '{self.image_dir}' does not exist; pass the folder of the images.")
        self.coco = _quiet_coco(annotation_file)
        self.ids = sorted(self.coco.imgs)
        self.category_ids = sorted(self.coco.cats)
        self.label_of = {cat: i + 1 for i, cat in enumerate(self.category_ids)}
        self.hflip = hflip

    @property
    def num_classes(self) -> int:
        """Categories plus the background class."""
        return len(self.category_ids) + 1

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        with Image.open(self.image_dir / info["file_name"]) as img:
            image = TF.to_dtype(TF.to_image(img.convert("RGB")), torch.float32, scale=True)
        anns = [a for a in self.coco.imgToAnns[image_id] if not a.get("iscrowd", 0) and a["bbox"][2] > 0
                and a["bbox"][3] > 0]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        if self.hflip and torch.rand(()) < self.hflip:
            image = image.flip(-1)
            boxes = torch.stack([image.shape[-1] - boxes[:, 2], boxes[:, 1], image.shape[-1] - boxes[:, 0],
                                 boxes[:, 3]], dim=1)
        return image, {"boxes": boxes, "labels": labels, "image_id": torch.tensor(image_id)}


def collate_detection(batch: Sequence) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Detection batches stay lists: images differ in size and carry different numbers of boxes."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def to_coco_results(outputs: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int],
                    category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """torchvision detector outputs (xyxy boxes, labels from 1) -> COCO result records (xywh, category ids)."""
    results = []
    for output, image_id in zip(outputs, image_ids):
        boxes = output["boxes"].detach().cpu()
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
        for box, score, label in zip(xywh.tolist(), output["scores"].tolist(), output["labels"].tolist()):
            results.append({"image_id": int(image_id), "category_id": int(category_ids[label - 1]),
                            "bbox": [round(v, 3) for v in box], "score": float(score)})
    return results


def coco_evaluate(coco_gt: Any, results: list[dict[str, Any]],
                  image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """COCOeval's box AP, AP50, AP75 and AP for small, medium and large objects (in %; -1 where undefined).

    Args:
        coco_gt: The ground truth (a pycocotools COCO object).
        results: COCO result records.
        image_ids: The images evaluated (default: all); those without detections count as misses.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        detections = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, detections, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids if image_ids is not None else coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) * 100 if v >= 0 else -1.0 for name, v in zip(STAT_NAMES, evaluator.stats[:6])}
