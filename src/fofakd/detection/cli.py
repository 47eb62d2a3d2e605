"""`fofakd detect train|distill|eval|demo`: the detection commands (export goes through `fofakd export`)."""
from __future__ import annotations

import argparse
import json


def _cmd_fit(args: argparse.Namespace) -> None:
    from ..engine.config import config_from_args

    cfg = config_from_args(args)  # validated before torch and torchvision load
    from .training import run_detection

    run_detection(cfg, args.detect_command)


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch

    from ..engine.config import build_config
    from ..engine.export import eval_data_dir, load_student
    from ..errors import FofakdError
    from . import saved_model  # noqa: F401  (registers detectors with the engine, so load_student builds them)
    from .coco import CocoDetection
    from .config import DetectionConfig
    from .data import data_root, eval_loader, first_images, split_files
    from .evaluate import evaluate_detector

    model, spec, _ = load_student(args.checkpoint, task="detection")
    data = args.data or spec["data"]
    data_dir = eval_data_dir(spec, data, args.data_dir)
    cfg = build_config({"data": data, "data_dir": data_dir, "eval_batch_size": args.batch_size, "workers": 0},
                       schema=DetectionConfig)
    split = args.split or cfg.splits()[1]
    dataset = CocoDetection(*split_files(data_root(cfg), split))
    trained = [c["id"] for c in spec["categories"]]
    if dataset.category_ids != trained:
        raise FofakdError(f"the detector was trained on categories {trained} but split '{split}' has "
                          f"{dataset.category_ids}; evaluate on data with the same categories.")
    images, ids = first_images(dataset, args.subset)
    stats = evaluate_detector(model, eval_loader(images, cfg, "cpu"), dataset.coco, ids, trained,
                              torch.device("cpu"))
    print(json.dumps({**stats, "images": len(ids), "data": data, "split": split}))


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_detection_demo

    run_detection_demo(args.out, quick=args.quick)


def add_detect_parser(sub: argparse._SubParsersAction) -> None:
    """The `detect` command and its subcommands."""
    from ..engine.config import add_config_arguments
    from .config import DetectionConfig

    detect = sub.add_parser("detect", help="object detection: Faster R-CNN + FPN detectors on COCO-format data")
    commands = detect.add_subparsers(dest="detect_command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train one detector without a teacher (a teacher, or a baseline)")
    add_config_arguments(train, "train", DetectionConfig)
    train.set_defaults(func=_cmd_fit)
    distill = commands.add_parser("distill", help="distil a student detector from a teacher detector")
    add_config_arguments(distill, "distill", DetectionConfig)
    distill.set_defaults(func=_cmd_fit)

    evaluate = commands.add_parser("eval", help="COCO box mAP of a trained detector on a split")
    evaluate.add_argument("--checkpoint", required=True, help="run directory, student.safetensors or checkpoint .pt")
    evaluate.add_argument("--data", choices=("shapes", "coco"), help="data set (default: the one it was trained on)")
    evaluate.add_argument("--data-dir", help="COCO-format folder (default: the one it was trained on)")
    evaluate.add_argument("--split", help="split name (default: val, or val2017 for coco)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--subset", type=int, help="evaluate on the first N images only")
    evaluate.set_defaults(func=_cmd_eval)

    demo = commands.add_parser("demo", help="distil a ResNet-18 Faster R-CNN into a ResNet-10 one on synthetic shapes")
    demo.add_argument("--out", default="demo-detection", help="output directory (default: demo-detection)")
    demo.add_argument("--quick", action="store_true", help="fewer images and epochs (about 10 minutes)")
    demo.set_defaults(func=_cmd_demo)
