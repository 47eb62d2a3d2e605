"""Distillation methods by name."""
from __future__ import annotations

import difflib
import inspect
from typing import Callable, Sequence

from torch import nn

from ..errors import FofakdError
from .base import Distiller

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
        close = difflib.get_close_matches(name, list(_METHODS), n=3)
        hint = f"did you mean {', '.join(close)}" if close else f"choose one of {', '.join(list_methods())}"
        raise FofakdError(f"method '{name}' is not known; {hint}.")
    return _METHODS[name]


def method_options(name: str) -> dict[str, object]:
    """A method's options and their defaults (the base class's included)."""
    options: dict[str, object] = {}
    for cls in reversed(get_method(name).__mro__):
        if issubclass(cls, Distiller):
            for param in inspect.signature(cls.__init__).parameters.values():
                if param.name not in _BASE_ARGS and param.kind is param.POSITIONAL_OR_KEYWORD:
                    options[param.name] = param.default
    return options


def build_distiller(
    name: str, teacher: nn.Module, student: nn.Module, input_size: Sequence[int], **options
) -> Distiller:
    """Build method `name` around `teacher` and `student` for inputs of `input_size` (C, H, W)."""
    cls = get_method(name)
    known = method_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise FofakdError(
            f"method '{name}' has no option {', '.join(unknown)}; its options are {', '.join(sorted(known))}."
        )
    for key, value in options.items():
        _check_option_type(name, key, value, known[key])
    return cls(teacher=teacher, student=student, input_size=input_size, **options)


def _check_option_type(method: str, key: str, value: object, default: object) -> None:
    """A single value for an option whose default is a number, a string or a flag must be of the same kind (ints
    widen to floats); options whose default is None, and lists, are left to the method."""
    if default is None or value is None or isinstance(value, (list, tuple, dict)):
        return  # several kinds allowed (OFA's gamma takes one number or one per branch): the method checks
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or isinstance(value, int))
        kind = "a number" if isinstance(default, float) else "an integer"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise FofakdError(f"method '{method}' option '{key}' must be {kind}, got {value!r}; fix its value.")
