"""The config machinery every task shares: options declared on a dataclass (`option`), filled from defaults, then a
YAML file, then command-line flags, each checked against its kind, range and choices."""
from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import FofakdError, first_line
from ..options import FRACTION, NON_NEGATIVE, POSITIVE, PROBABILITY, check_option

TRAIN, DISTILL, BOTH = ("train",), ("distill",), ("train", "distill")
_KINDS = {int: "int", float: "float", str: "str", bool: "bool", dict: "dict"}


def option(default: Any, help: str, commands: tuple[str, ...] = BOTH, choices: tuple | None = None,
         bounds: tuple | None = None) -> Any:
    factory = {"default_factory": lambda: dict(default)} if isinstance(default, dict) else {"default": default}
    return field(**factory, metadata={"help": help, "commands": commands, "choices": choices, "bounds": bounds})


@dataclass
class TrainingConfig:
    """Options every fofakd run has, classification or detection: models, method, recipe, precision, run directory.

    YAML keys use the same names as the fields; each task's config adds its data options.
    """

    # models
    model: str | None = option(None, "timm model to train (for detection: the backbone)", TRAIN)
    model_kwargs: dict = option({}, "extra model arguments, KEY=VALUE (e.g. patch_size=4)", TRAIN)
    checkpoint: str | None = option(None, "initial weights for the model (file or fofakd run directory)", TRAIN)
    teacher: str | None = option(None, "timm name of the teacher (default: read from a run directory)", DISTILL)
    teacher_checkpoint: str | None = option(None, "teacher weights: a checkpoint file or a fofakd train run directory",
                                          DISTILL)
    teacher_kwargs: dict = option({}, "extra teacher arguments, KEY=VALUE", DISTILL)
    student: str | None = option(None, "timm name of the student", DISTILL)
    student_kwargs: dict = option({}, "extra student arguments, KEY=VALUE (e.g. patch_size=4 for small images)",
                                DISTILL)
    pretrained: bool = option(False, "start from timm's pretrained weights (needs network)")
    reset_head: bool = option(False, "accept a checkpoint whose classifier has another class count (new head)")
    method: str = option("fofa", "distillation method (see `fofakd methods`)", DISTILL)
    method_options: dict = option({}, "method options, KEY=VALUE (e.g. se_mode=gate)", DISTILL)
    # recipe
    epochs: int = option(10, "training epochs", bounds=POSITIVE)
    batch_size: int = option(128, "batch size per process", bounds=POSITIVE)
    eval_batch_size: int = option(256, "evaluation batch size per process", bounds=POSITIVE)
    workers: int = option(2, "data loader workers for image files", bounds=NON_NEGATIVE)
    opt: str = option("adamw", "optimiser (any timm optimiser name, e.g. sgd, adamw)")
    fused_optimizer: bool = option(True, "torch's fused kernel for adam and adamw where the device has one "
                                       "(--no-fused-optimizer: the for-loop)")
    lr: float = option(1e-3, "peak learning rate (per process batch; see the docs for scaling)", bounds=POSITIVE)
    min_lr: float = option(1e-5, "final learning rate of the schedule", bounds=NON_NEGATIVE)
    weight_decay: float = option(0.05, "weight decay (not applied to norms and biases)", bounds=NON_NEGATIVE)
    momentum: float = option(0.9, "SGD momentum", bounds=FRACTION)
    sched: str = option("cosine", "learning-rate schedule, stepped every iteration", choices=("cosine", "step", "none"))
    warmup_epochs: int = option(0, "linear warm-up epochs", bounds=NON_NEGATIVE)
    warmup_lr: float = option(1e-6, "learning rate at the start of warm-up", bounds=NON_NEGATIVE)
    decay_epochs: float = option(30, "epochs between decays of the step schedule", bounds=POSITIVE)
    decay_rate: float = option(0.1, "decay factor of the step schedule", bounds=POSITIVE)
    clip_grad: float | None = option(None, "clip the gradient norm to this value", bounds=POSITIVE)
    hflip: float = option(0.5, "horizontal flip probability", bounds=PROBABILITY)
    amp: str = option("none", "mixed precision: bf16 (CPU or GPU) or fp16 (GPU, with a grad scaler)",
                    choices=("none", "bf16", "fp16"))
    ema: bool = option(False, "keep an exponential moving average of the student")
    ema_decay: float = option(0.9998, "EMA decay per step", bounds=FRACTION)
    channels_last: bool = option(False, "channels-last memory format")
    compile: bool = option(False, "torch.compile the student and teacher")
    sync_bn: bool = option(False, "synchronise the student's BatchNorm across processes")
    seed: int = option(42, "random seed")
    deterministic: bool = option(False, "deterministic algorithms (slower)")
    device: str = option("auto", "cpu, cuda or auto")
    tracker: str | None = option(None, "also log to an experiment tracker: mlflow (a file store under the run unless "
                                     "MLFLOW_TRACKING_URI is set) or wandb (offline unless WANDB_MODE is set)",
                               choices=("mlflow", "wandb"))
    # run directory
    out: str | None = option(None, "run directory")
    resume: bool = option(False, "continue the run in --out from checkpoints/last.pt")
    overwrite: bool = option(False, "replace a run that --out already holds")
    stop_after: int | None = option(None, "stop after N epochs of this invocation, with a checkpoint to --resume from",
                                  bounds=POSITIVE)
    # which task's command made the run (no flag: each task's config class sets it)
    task: str = option("classification", "the run's task", commands=())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_task(config: dict[str, Any]) -> str:
    """The task of a run, as its saved config records it."""
    return config.get("task", "classification")


@functools.cache
def fields_of(schema: type) -> dict[str, dataclasses.Field]:
    """A config class's options by name."""
    return {f.name: f for f in dataclasses.fields(schema)}



@functools.cache
def _type_hints(schema: type) -> dict[str, Any]:
    """A config class's resolved field types (resolving them costs about 2 ms a field, and the parser asks for
    every field of every command)."""
    return typing.get_type_hints(schema)


def _base_type(name: str, schema: type) -> tuple[type, bool]:
    hint = _type_hints(schema)[name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in args if a is not type(None)), True
    return hint, False


# Names other training scripts use for fofakd's options, for the "did you mean" of an unknown key.
_ALIASES = {"learning_rate": "lr", "num_epochs": "epochs", "bs": "batch_size", "lr_min": "min_lr", "wd": "weight_decay",
            "optimizer": "opt", "label_smoothing": "smoothing", "num_workers": "workers"}


def _inherited(schema: type, key: str, item: str) -> Any:
    """A field's metadata `item`, from the nearest class that sets it (a task config re-defaulting `epochs` keeps
    the base class's range)."""
    for cls in schema.__mro__:
        if dataclasses.is_dataclass(cls):
            f = fields_of(cls).get(key)
            if f is not None and f.metadata.get(item) is not None:
                return f.metadata[item]
    return None


def check_value(key: str, value: Any, schema: type) -> Any:
    """Validate one option's value against its declared type and choices; return it (ints widened to float)."""
    fields = fields_of(schema)
    if key not in fields:
        import difflib

        close = [_ALIASES[key]] if _ALIASES.get(key) in fields else difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FofakdError(f"config key '{key}' is not an option{hint}; see the command's --help.")
    kind, optional = _base_type(key, schema)
    kinds = [_KINDS[kind], *(["none"] if optional else [])]
    flag = f"--{key.replace('_', '-')} / " if fields[key].metadata["commands"] else ""  # as typed, and as in YAML
    return check_option(f"{flag}config key '{key}'", value, kinds, _inherited(schema, key, "bounds"),
                        fields[key].metadata["choices"])


def load_yaml(path: str | Path, schema: type) -> dict[str, Any]:
    """Options from a YAML mapping, checked key by key."""
    path = Path(path)
    if not path.is_file():
        raise FofakdError(f"config file '{path}' does not exist; check the path.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise FofakdError(f"config file '{path}' is not valid YAML ({first_line(err)}); fix its syntax.") from None
    if not isinstance(data, dict):
        raise FofakdError(f"config file '{path}' must hold a mapping of option names to values.")
    return {key: check_value(key, value, schema) for key, value in data.items()}


def build_config(overrides: dict[str, Any], config_file: str | Path | None = None, *, schema: type) -> Any:
    """A `schema` config: defaults, then the YAML file, then `overrides` (the flags given on the command line)."""
    values = load_yaml(config_file, schema) if config_file else {}
    values.update({key: check_value(key, value, schema) for key, value in overrides.items()})
    cfg = schema(**values)
    if cfg.min_lr > cfg.lr:
        raise FofakdError(f"--min-lr {cfg.min_lr} is above --lr {cfg.lr}; the schedule falls from --lr to --min-lr, "
                          "so give a --min-lr below --lr.")
    return cfg


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> dict, values read as YAML scalars (4 -> int, 0.1 -> float, true -> bool)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FofakdError(f"'{item}' is not KEY=VALUE; write options like patch_size=4.")
        out[key] = yaml.safe_load(value)
    return out


def add_config_arguments(parser: argparse.ArgumentParser, command: str, schema: type) -> None:
    """One flag per option of `command`; unset flags stay absent so the YAML file and defaults apply."""
    parser.add_argument("--config", help="YAML file with options (flags override it)")
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="the run directory, as --out: `fofakd distill RUN_DIR --resume` continues a run")
    parser.set_defaults(config_schema=schema)
    for name, f in fields_of(schema).items():
        if command not in f.metadata["commands"]:
            continue
        flag = "--" + name.replace("_", "-")
        kind, _ = _base_type(name, schema)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = "" if default in (None, {}) or "(default" in f.metadata["help"] else f" (default: {default})"
        common = {"dest": name, "default": argparse.SUPPRESS, "help": f.metadata["help"] + shown}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif kind is dict:
            parser.add_argument(flag, nargs="+", metavar="KEY=VALUE", type=str, **common)
        else:
            choices = f.metadata["choices"]  # prefix choices ("hfds/") are checked by check_value, not argparse
            exact = choices if choices and not any(str(c).endswith("/") for c in choices) else None
            parser.add_argument(flag, type=kind, choices=exact, **common)


# What a resumed run may change; every other flag given with --resume must agree with the run's config.yaml.
RESUME_MAY_CHANGE = ("epochs", "stop_after", "device", "workers", "eval_batch_size", "resume", "out", "overwrite")


def config_from_args(args: argparse.Namespace) -> Any:
    """The config of a parsed command line (its class set by `add_config_arguments`).

    With --resume the run's own config.yaml is the base (found through --out or RUN_DIR, or given as --config),
    so `--out DIR --resume` or `DIR --resume` is enough; flags may change what `RESUME_MAY_CHANGE` names and must agree otherwise.
    """
    schema = args.config_schema
    fields = fields_of(schema)
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    for key, value in list(overrides.items()):
        if _base_type(key, schema)[0] is dict:
            overrides[key] = parse_key_values(value)
    config_file = getattr(args, "config", None)
    run_dir = getattr(args, "run_dir", None)
    if run_dir is not None:
        if overrides.get("out", run_dir) != run_dir:
            raise FofakdError(f"the run directory '{run_dir}' and --out {overrides['out']} differ; give one of them.")
        overrides["out"] = run_dir
    if overrides.get("resume"):
        run_config = _run_config(config_file, overrides.get("out"))
        if run_config is not None:
            config_file = run_config
            overrides.setdefault("out", str(run_config.parent))  # a copied run resumes where its config.yaml is
            overrides.setdefault("stop_after", None)  # belongs to the invocation that stopped, not to the run
            overrides.setdefault("overwrite", False)
            saved = load_yaml(run_config, schema)
            for key, value in overrides.items():
                if key not in RESUME_MAY_CHANGE and key in saved and saved[key] != value:
                    raise FofakdError(
                        f"--{key.replace('_', '-')} {value!r} differs from the run's config.yaml ({saved[key]!r}); a "
                        f"resumed run keeps its settings except {', '.join(RESUME_MAY_CHANGE[:5])}."
                    )
    cfg = build_config(overrides, config_file, schema=schema)
    own_task = fields_of(schema)["task"].default
    if cfg.task != own_task:
        command = "fofakd detect" if cfg.task == "detection" else "fofakd train / distill"
        raise FofakdError(f"'{config_file}' configures a {cfg.task} run; run it with {command}.")
    return cfg


def _run_config(config_file: str | None, out: str | None) -> Path | None:
    """The config.yaml of the run being resumed: --config when it is a run's, else the one in --out."""
    for candidate in (Path(config_file) if config_file else None, Path(out) / "config.yaml" if out else None):
        if candidate is not None and candidate.name == "config.yaml" and (candidate.parent / "checkpoints").is_dir():
            return candidate
    return None
