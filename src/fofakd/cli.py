"""The `fofakd` command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import FofakdError


def _cmd_methods(args: argparse.Namespace) -> None:
    from .methods import list_methods, method_options

    for name in list_methods():
        options = ", ".join(f"{k}={v!r}" for k, v in method_options(name).items())
        print(f"{name}: {options}")


def _cmd_stages(args: argparse.Namespace) -> None:
    from .features import discover_stages
    from .models import create_model

    model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, img_size=args.img_size)
    stages = discover_stages(model, (args.in_chans, args.img_size, args.img_size))
    rows = [
        {"index": s.index, "module": s.module, "prompt_before": s.start_module, "form": s.form,
         "shape": list(s.feature_shape)}
        for s in stages.stages
    ]
    print(json.dumps({"model": args.model, "num_prefix_tokens": stages.num_prefix_tokens, "stages": rows}, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fofakd", description="Heterogeneous knowledge distillation for vision models (FOFA and baselines)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    methods = sub.add_parser("methods", help="list the distillation methods and their options")
    methods.set_defaults(func=_cmd_methods)
    stages = sub.add_parser("stages", help="show the 4 stages fofakd distils for a model at an input size")
    stages.add_argument("--model", required=True, help="timm model name")
    stages.add_argument("--img-size", type=int, default=224, help="input height and width (default 224)")
    stages.add_argument("--in-chans", type=int, default=3, help="input channels (default 3)")
    stages.add_argument("--num-classes", type=int, default=10, help="classifier size (default 10)")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
