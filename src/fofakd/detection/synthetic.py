"""A small synthetic COCO-format detection set: shapes with boxes on textured backgrounds, made deterministically.

No real detection data can be downloaded offline; this set serves the tests and the detection demo. Every image
has 1 to `max_objects` shapes of three categories (square, disc, triangle), each a solid colour on a noisy,
striped background, with its tight bounding box in COCO's `[x, y, width, height]` form.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ["square", "disc", "triangle"]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
    stripes = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / period)
    base = rng.uniform(60, 190, size=3)
    image = base[None, None, :] + 25 * stripes[..., None] + rng.normal(0, 12, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw(draw: ImageDraw.ImageDraw, category: int, x: float, y: float, side: float, colour: tuple) -> list[float]:
    """Draw one shape with its box's top-left at (x, y); returns the box [x, y, w, h]."""
    if category == 0:
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=colour)
    elif category == 1:
        draw.ellipse([x, y, x + side - 1, y + side - 1], fill=colour)
    else:
        draw.polygon([(x, y + side - 1), (x + side - 1, y + side - 1), (x + (side - 1) / 2, y)], fill=colour)
    return [float(x), float(y), float(side), float(side)]


def make_synthetic_coco(root: str | Path, num_images: int = 64, size: int = 128, max_objects: int = 3,
                        seed: int = 0) -> Path:
    """Write `root/images/*.png` and `root/annotations.json`; the same arguments always give the same files.

    Returns:
        The annotation file's path.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        canvas = Image.fromarray(_background(rng, size))
        draw = ImageDraw.Draw(canvas)
        placed: list[list[float]] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            side = int(rng.integers(size // 8, size // 3))
            for _attempt in range(20):  # keep shapes apart so every box is fully visible
                x, y = (int(v) for v in rng.integers(0, size - side, size=2))
                if all(x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y for bx, by, bw, bh in placed):
                    break
            else:
                continue
            category = int(rng.integers(0, len(CATEGORIES)))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            box = _draw(draw, category, x, y, side, colour)
            placed.append(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        name = f"{image_id:06d}.png"
        canvas.save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CATEGORIES)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path
