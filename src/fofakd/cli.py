"""The `fofakd` command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import FofakdError, RunInterrupted


def _cmd_methods(args: argparse.Namespace) -> None:
    from .methods import get_method, list_methods, method_options

    for name in list_methods():
        options = ", ".join(f"{k}={v!r}" for k, v in method_options(name).items())
        print(f"{name} ({', '.join(get_method(name).tasks)}): {options}")


def _cmd_stages(args: argparse.Namespace) -> None:
    from .engine.config import parse_key_values
    from .features import discover_stages
    from .models import create_model

    kwargs = parse_key_values(args.model_kwargs or [])
    model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, img_size=args.img_size,
                         **kwargs)
    stages = discover_stages(model, (args.in_chans, args.img_size, args.img_size))
    rows = [
        {"index": s.index, "module": s.module, "prompt_before": s.start_module, "form": s.form,
         "shape": list(s.feature_shape)}
        for s in stages.stages
    ]
    if args.json:
        print(json.dumps({"model": args.model, "kwargs": kwargs, "num_prefix_tokens": stages.num_prefix_tokens,
                          "stages": rows}, indent=2))
        return
    print(f"{args.model} {' '.join(f'{k}={v}' for k, v in kwargs.items())} at {args.in_chans}x{args.img_size}x"
          f"{args.img_size} ({stages.num_prefix_tokens} prefix tokens)".replace("  ", " "))
    table = [("stage", "feature of", "prompt before", "form", "shape")]
    table += [(str(i + 1), r["module"], r["prompt_before"], r["form"], "x".join(map(str, r["shape"])))
              for i, r in enumerate(rows)]
    widths = [max(len(row[c]) for row in table) for c in range(5)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    smallest = min(min(s.grid) for s in stages.stages)
    if smallest < 2:
        print(f"note: a stage grid is {smallest}x{smallest}; distillation has little to align there. Give the model "
              "a smaller patch or stride (--model-kwargs patch_size=4 for a ViT, output_stride=16 for a CNN) or a "
              "larger --img-size.")


def _cmd_fit(args: argparse.Namespace) -> None:
    from .classification.config import check_run
    from .engine.config import config_from_args

    cfg = config_from_args(args)  # validated before torch and timm load, so a mistake is reported at once
    check_run(cfg, args.command)
    from .classification.training import run

    run(cfg, args.command)


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch

    from .data import build_eval_data
    from .classification.config import build_config
    from .engine.evaluate import evaluate
    from .engine.export import eval_data_dir
    from .tasks import load_student

    model, spec, _ = load_student(args.checkpoint, task="classification")
    data_name = args.data or spec.get("data")
    if not data_name:
        raise FofakdError(f"'{args.checkpoint}' does not record its data set; name it with --data (and --data-dir).")
    options = {"data": data_name, "img_size": spec["img_size"], "eval_batch_size": args.batch_size,
               "test_subset": args.subset}
    data_dir = eval_data_dir(spec, data_name, args.data_dir)
    if data_dir:
        options["data_dir"] = data_dir
    data = build_eval_data(build_config(options))
    if data.num_classes != spec["num_classes"] or data.in_chans != spec["in_chans"]:
        raise FofakdError(f"the student was trained for {spec['num_classes']} classes and {spec['in_chans']} channels "
                          f"but '{options['data']}' has {data.num_classes} and {data.in_chans}; pick matching data.")
    trained_names = list(spec.get("class_names") or [])
    if trained_names and data.class_names and trained_names != list(data.class_names):
        differ = next(i for i, (a, b) in enumerate(zip(trained_names, data.class_names)) if a != b)
        raise FofakdError(f"the data's classes differ from those the student was trained on (class {differ} is "
                          f"'{data.class_names[differ]}' here, '{trained_names[differ]}' in training); evaluate on "
                          "data with the same class folders.")
    result = evaluate(model, data.test, torch.device("cpu"))
    print(json.dumps({"top1": result["top1"], "top5": result["top5"], "samples": result["samples"],
                      "data": options["data"], "split": data.test_split}))


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick)


def _cmd_report(args: argparse.Namespace) -> None:
    from .reports.report import markdown_table, write_report

    results = write_report(args.runs, args.out, title=args.title)
    print(markdown_table(results["table"]))
    print(f"report: {args.out}/report.md")


def _cmd_attention(args: argparse.Namespace) -> None:
    from .reports.attention import draw_attention

    print(f"attention maps: {draw_attention(args.run, args.out, args.images, args.overwrite)}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .tasks import export_student

    print(json.dumps(export_student(args.checkpoint, args.format, args.out, overwrite=args.overwrite,
                                    fold_normalisation=args.fold_normalisation, push_to_hub=args.push_to_hub)))


def _cmd_compare(args: argparse.Namespace) -> None:
    from .compare import comparison_from_args
    from .compare.plan import check_settings

    comparison = comparison_from_args(args)
    if args.plan:
        from .compare.runner import run_state, shown_command, timed_steps

        timing = timed_steps(comparison)
        total = 0.0
        for method, seed in comparison.runs():
            state = run_state(comparison, method, seed)
            seconds = 0.0 if state == "done" else timing[method]["step_s"] * timing[method]["steps"]
            total += seconds
            print(f"{method}/seed{seed} [{state}, ~{seconds:.0f} s]: {shown_command(comparison, method, seed)}")
        print(f"predicted: {total / 60 / comparison.parallel:.1f} min of training, {comparison.parallel} run(s) at a "
              "time, from 3 timed steps of each method (evaluation not counted); nothing was started.")
        return
    import threading

    from .compare.report import write
    from .compare.runner import execute

    check_settings(comparison)
    lock = threading.Lock()

    def report() -> None:
        with lock:
            write(comparison)

    failures = execute(comparison, report)
    results = write(comparison)
    if results:
        print(f"compare: {results['recommendation']['text']}")
        print(f"report: {comparison.out / 'report.md'}")
    if failures:
        raise FofakdError(f"{len(failures)} of {len(comparison.runs())} runs failed ({', '.join(failures)}); the "
                          "others are reported. Fix the cause and run the same command again to make them.")


def _cmd_recipes(args: argparse.Namespace) -> None:
    import os

    from .recipes import commands, list_recipes, write_recipes

    if args.write:
        print(f"wrote {len(write_recipes(args.write, args.overwrite))} recipes under {args.write}")
        return
    for recipe, path in list_recipes(args.dir, args.match):
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
        print(f"{shown}\n  " + "\n  ".join(commands(recipe, shown)))


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .classification.config import ClassificationConfig
    from .engine.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="fofakd", description="Heterogeneous knowledge distillation for vision models (FOFA and baselines)."
    )
    parser.add_argument("--version", action="version", version=f"fofakd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser("train", help="train one model without a teacher (a teacher, or a from-scratch baseline)")
    add_config_arguments(train, "train", ClassificationConfig)
    train.set_defaults(func=_cmd_fit)
    distill = sub.add_parser("distill", help="distil a student from a teacher with a method")
    add_config_arguments(distill, "distill", ClassificationConfig)
    distill.set_defaults(func=_cmd_fit)

    evaluate = sub.add_parser("eval", help="top-1/top-5 of a trained student on a data set's test split")
    evaluate.add_argument("--checkpoint", required=True, help="run directory, student.safetensors or checkpoint .pt")
    evaluate.add_argument("--data", help="data set (default: the one the student was trained on)")
    evaluate.add_argument("--data-dir", help="where the data set lives")
    evaluate.add_argument("--batch-size", type=int, default=256, help="images per evaluation batch (default 256)")
    evaluate.add_argument("--subset", type=int, help="evaluate on the first N test images only")
    evaluate.set_defaults(func=_cmd_eval)

    export = sub.add_parser("export", help="export the bare student or detector (ONNX is checked with onnxruntime)")
    export.add_argument("--checkpoint", required=True, help="run directory, student.safetensors or checkpoint .pt")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors", "timm"),
                        help="timm: a folder that plain timm loads with create_model('local-dir:OUT', pretrained=True)")
    export.add_argument("--out", required=True, help="output file (a folder for --format timm)")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    export.add_argument("--push-to-hub", metavar="ORG/NAME", help="with --format timm: also upload the folder to this "
                        "Hugging Face Hub repository (timm's push_to_hf_hub; needs a token)")
    export.add_argument("--fold-normalisation", action="store_true",
                        help="ONNX/TorchScript take pixels in [0, 1] and normalise inside the graph (default: the "
                             "graph expects normalised input; the ONNX metadata holds the mean and std)")
    export.set_defaults(func=_cmd_export)

    demo = sub.add_parser("demo",
                          help="distil a ResNet into a small ViT on Fashion-MNIST with scratch, kd, fitnet, fofa")
    demo.add_argument("--out", default="demo", help="output directory (default: demo)")
    demo.add_argument("--quick", action="store_true",
                      help="fewer images and steps, without KD (about 8 minutes on one core)")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", help="comparison table and plots from run directories")
    report.add_argument("runs", nargs="+", help="run directories (several seeds of a method give a spread)")
    report.add_argument("--out", required=True, help="output directory")
    report.add_argument("--title", help="report title (default: the methods, student, teacher and data set)")
    report.set_defaults(func=_cmd_report)

    attention = sub.add_parser("attention", help="draw a FOFA run's region-aware attention over test images")
    attention.add_argument("run", help="a fofa run directory")
    attention.add_argument("--out", required=True, help="PNG file to write")
    attention.add_argument("--images", type=int, default=4, help="how many test images (default 4)")
    attention.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    attention.set_defaults(func=_cmd_attention)

    compare = sub.add_parser("compare", help="several methods on one teacher, student and data over paired seeds, "
                                            "with a report and a recommendation")
    add_config_arguments(compare, "distill", ClassificationConfig)
    compare.add_argument("--methods", help="methods to compare, comma-separated (e.g. scratch,kd,fitnet,fofa)")
    compare.add_argument("--seeds", type=int, help="seeds per method, 0 .. N-1 (default 3)")
    compare.add_argument("--reference", help="the method the others are compared with (default: best on validation)")
    compare.add_argument("--parallel", type=int, help="runs at a time: one process each, one GPU each where there "
                                                      "are GPUs, else the CPU threads split between them (default 1)")
    compare.add_argument("--plan", action="store_true", help="print the runs, their commands and a predicted time; "
                                                             "start nothing")
    compare.set_defaults(func=_cmd_compare)

    recipes = sub.add_parser("recipes", help="list the paper's recipe configs and the commands that run them")
    recipes.add_argument("match", nargs="?", help="only recipes whose path contains this (e.g. imagenet/convnext_t)")
    recipes.add_argument("--dir", help="recipe folder (default: configs/ of the source tree)")
    recipes.add_argument("--write", metavar="DIR", help="write every recipe config under DIR instead of listing")
    recipes.add_argument("--overwrite", action="store_true", help="with --write: replace recipe files that differ")
    recipes.set_defaults(func=_cmd_recipes)

    from .detection.cli import add_detect_parser

    add_detect_parser(sub)

    methods = sub.add_parser("methods", help="list the distillation methods and their options")
    methods.set_defaults(func=_cmd_methods)
    stages = sub.add_parser("stages", help="show the 4 stages fofakd distils for a model at an input size")
    stages.add_argument("--model", required=True, help="timm model name")
    stages.add_argument("--img-size", type=int, default=224, help="input height and width (default 224)")
    stages.add_argument("--in-chans", type=int, default=3, help="input channels (default 3)")
    stages.add_argument("--num-classes", type=int, default=10, help="classifier size (default 10)")
    stages.add_argument("--model-kwargs", nargs="+", metavar="KEY=VALUE",
                        help="model arguments, as for train (e.g. patch_size=4), to see the model you would train")
    stages.add_argument("--json", action="store_true", help="print the stages as JSON")
    stages.set_defaults(func=_cmd_stages)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        args.func(args)
    except FofakdError as err:
        print(f"fofakd: error: {err}", file=sys.stderr)
        return 2
    except RunInterrupted as stop:
        print(f"fofakd: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("fofakd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
