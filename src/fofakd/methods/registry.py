"""Distillation methods by name."""
from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Callable, Sequence

from torch import nn

from ..errors import FofakdError
from ..method_validation import check_method
from ..options import Range, option_choices, option_kinds
from .base import Distiller
from .source import FeatureSource

_METHODS: dict[str, type[Distiller]] = {}
_BASE_ARGS = ("self", "teacher", "student", "input_size", "source")


def register_method(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator registering a `Distiller` subclass under `name`."""

    def wrap(cls: type[Distiller]) -> type[Distiller]:
        _METHODS[name] = cls
        cls.method_name = name
        return cls

    return wrap


def list_methods() -> list[str]:
    """Names of the registered methods."""
    return sorted(_METHODS)


def get_method(name: str) -> type[Distiller]:
    if name not in _METHODS:
        check_method(name, {}, {m: {} for m in _METHODS})  # raises: says which names are known
    return _METHODS[name]


def method_options(name: str) -> dict[str, object]:
    """A method's options and their defaults (the base class's included)."""
    return {option: spec["default"] for option, spec in method_option_specs(name).items()}


def method_option_specs(name: str) -> dict[str, dict[str, Any]]:
    """A method's options as `method_options.json` declares them: default, kinds and choices (from the type hints)
    and range, the base class's options included. Options come from a class's constructor (ranges in its
    `option_ranges`) and from its `option_groups` (dataclasses whose fields declare their range)."""
    specs: dict[str, dict[str, Any]] = {}
    for cls in reversed(get_method(name).__mro__):
        if not issubclass(cls, Distiller):
            continue
        hints = typing.get_type_hints(cls.__init__)
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name not in _BASE_ARGS and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                specs[param.name] = _spec(param.default, hints[param.name], cls.option_ranges.get(param.name))
        for group in cls.__dict__.get("option_groups", ()):
            group_hints = typing.get_type_hints(group)
            for f in dataclasses.fields(group):
                specs[f.name] = _spec(f.default, group_hints[f.name], f.metadata.get("range"))
    return specs


def _spec(default: Any, hint: Any, bounds: Range | None) -> dict[str, Any]:
    return {"default": default, "kinds": option_kinds(hint), "choices": option_choices(hint),
            "range": list(bounds) if bounds is not None else None}


def methods_for(task: str) -> list[str]:
    """The registered methods a task can use."""
    return [m for m in list_methods() if task in _METHODS[m].tasks]


def build_distiller(
    name: str, teacher: nn.Module, student: nn.Module, input_size: Sequence[int],
    source: FeatureSource | None = None, **options
) -> Distiller:
    """Build method `name` around `teacher` and `student` for inputs of `input_size` (C, H, W).

    `source` says how the method reads the models (default: timm classifiers); its task's defaults for the method
    come before `options`.
    """
    cls = get_method(name)
    task = source.task if source is not None else "classification"
    if task not in cls.tasks:
        raise FofakdError(f"method '{name}' needs what only {' and '.join(cls.tasks)} models give, so it cannot be "
                          f"used for {task}; use one of {', '.join(methods_for(task))}.")
    options = check_method(name, options, {name: method_option_specs(name)})
    defaults = source.method_defaults.get(name, {}) if source is not None else {}
    return cls(teacher=teacher, student=student, input_size=input_size, source=source, **{**defaults, **options})
