"""Distillation methods by name."""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

from torch import nn

from ..method_catalogue import check_method
from ..errors import FofakdError
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
        check_method(name, {}, {m: {} for m in _METHODS})
    return _METHODS[name]


def method_options(name: str) -> dict[str, object]:
    """A method's options and their defaults (the base class's included)."""
    options: dict[str, object] = {}
    for cls in reversed(get_method(name).__mro__):
        if issubclass(cls, Distiller):
            for param in inspect.signature(cls.__init__).parameters.values():
                if param.name not in _BASE_ARGS and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                    options[param.name] = param.default
    return options


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
    check_method(name, options, {name: method_options(name)})
    defaults = source.method_defaults.get(name, {}) if source is not None else {}
    return cls(teacher=teacher, student=student, input_size=input_size, source=source, **{**defaults, **options})
