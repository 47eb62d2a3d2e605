"""Distillation methods by name."""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

from torch import nn

from ..method_catalogue import check_method
from ..errors import FofakdError
from .base import Distiller, LogitDistiller

_METHODS: dict[str, type[Distiller]] = {}
_BASE_ARGS = ("self", "teacher", "student", "input_size")


def register_method(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator registering a `Distiller` subclass under `name`."""

    def wrap(cls: type[Distiller]) -> type[Distiller]:
        _METHODS[name] = cls
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


def build_distiller(
    name: str, teacher: nn.Module, student: nn.Module, input_size: Sequence[int], **options
) -> Distiller:
    """Build method `name` around `teacher` and `student` for inputs of `input_size` (C, H, W)."""
    cls = get_method(name)
    check_method(name, options, {name: method_options(name)})
    return cls(teacher=teacher, student=student, input_size=input_size, **options)


def logit_method(name: str, **options) -> LogitDistiller:
    """Method `name`'s losses on logits a task supplies (the detector's ROI logits, say), without its models.

    Only methods that compare logits alone (`LogitDistiller`: kd, dkd, dist) can be used so.
    """
    cls = get_method(name)
    if not issubclass(cls, LogitDistiller):
        logit_only = ", ".join(m for m in list_methods() if issubclass(_METHODS[m], LogitDistiller))
        raise FofakdError(f"method '{name}' needs the models' own features, not only logits, so it cannot be used "
                          f"here; use one of {logit_only}.")
    check_method(name, options, {name: method_options(name)})
    return cls(teacher=None, student=nn.Identity(), input_size=(), **options)

