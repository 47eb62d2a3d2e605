"""Declared kinds and ranges of options, and the one check every option value goes through.

Config fields (`engine.config.option`) and method options (`methods`, through `method_options.json`) declare a kind
and a range once; the command line, YAML files and `build_distiller(**options)` all check values here, before any
model is built. Importing this module does not import torch.
"""
from __future__ import annotations

import collections.abc
import math
import re
import types
import typing
from typing import Any, NamedTuple


class Range(NamedTuple):
    """Allowed numbers: from `low` to `high` (None: no bound), each end included or not."""

    low: float | None
    high: float | None = None
    low_included: bool = True
    high_included: bool = False

    def describe(self) -> str:
        low = f"{'at least' if self.low_included else 'above'} {self.low}" if self.low is not None else ""
        high = f"{'at most' if self.high_included else 'below'} {self.high}" if self.high is not None else ""
        return " and ".join(part for part in (low, high) if part)

    def holds(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_included)):
            return False
        return self.high is None or value < self.high or (value == self.high and self.high_included)


POSITIVE = Range(0, None, False)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)  # a share of something, below one
PROBABILITY = Range(0, 1, True, True)

# Kinds, as method_options.json stores them: a value must be one of an option's kinds.
KIND_WORDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
              "none": "empty (null)", "int list": "a list of integers", "float list": "a list of numbers",
              "dict": "a mapping"}
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(value: Any, kind: str) -> tuple[bool, Any]:
    """Whether `value` is of `kind`, and the value as that kind (ints widen to floats; YAML's '1e-3' text, which
    PyYAML reads as a string, becomes a float)."""
    if kind == "none":
        return value is None, value
    if kind == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        return (_is_int(value) or isinstance(value, float)), float(value) if _is_int(value) else value
    if kind == "int":
        return _is_int(value), value
    if kind in ("int list", "float list"):
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_matches(v, kind.split()[0]) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    python = {"bool": bool, "str": str, "dict": dict}[kind]
    return isinstance(value, python), value


def _chosen(value: Any, choices: tuple | list) -> bool:
    """Whether `value` is among `choices`, where a choice ending in "/" (such as "hfds/") stands for any name with
    that prefix."""
    return value in choices or any(isinstance(c, str) and c.endswith("/") and isinstance(value, str)
                                   and value.startswith(c) and len(value) > len(c) for c in choices)


def check_option(what: str, value: Any, kinds: list[str], bounds: Range | None = None,
                 choices: tuple | list | None = None) -> Any:
    """`value` checked against its declared kinds, choices and range; returned as its kind (ints widened to floats).

    Args:
        what: How the message names the option, e.g. "config key 'lr'" or "method 'kd' option 'temperature'".
        value: The value given.
        kinds: The kinds it may be (keys of `KIND_WORDS`).
        bounds: The range every number in it must lie in.
        choices: The values a string may take ("prefix/" admits any name with that prefix).

    Raises:
        FofakdError: One sentence naming the option, the value and what is expected.
    """
    from .errors import FofakdError

    for kind in kinds:
        ok, converted = _matches(value, kind)
        if ok:
            break
    else:
        wanted = " or ".join(KIND_WORDS[k] for k in kinds)
        raise FofakdError(f"{what} must be {wanted}, got {value!r}; fix its value.")
    if choices and converted is not None and not _chosen(converted, choices):
        shown = ", ".join(f"{c}NAME" if str(c).endswith("/") else str(c) for c in choices)
        raise FofakdError(f"{what} must be one of {shown}, got {value!r}; fix its value.")
    numbers = converted if isinstance(converted, list) else [converted]
    for number in numbers:
        if isinstance(number, float) and not math.isfinite(number):
            raise FofakdError(f"{what} must be a finite number, got {value!r}; fix its value.")
        if bounds is not None and (_is_int(number) or isinstance(number, float)) and not bounds.holds(number):
            raise FofakdError(f"{what} must be {bounds.describe()}, got {value!r}; fix its value.")
    return converted


def _union_members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def option_kinds(hint: Any) -> list[str]:
    """The kinds (`KIND_WORDS`) a type hint allows: `Sequence[int] | None` -> int list, none; a `Literal` of
    strings -> str."""
    kinds = []
    for member in _union_members(hint):
        if member is type(None):
            kinds.append("none")
        elif typing.get_origin(member) is typing.Literal:
            kinds.append("str")
        elif typing.get_origin(member) in (collections.abc.Sequence, list, tuple):
            kinds.append(f"{option_kinds(typing.get_args(member)[0])[0]} list")
        else:
            kinds.append({float: "float", int: "int", bool: "bool", str: "str", dict: "dict"}[member])
    return kinds


def option_choices(hint: Any) -> list[str] | None:
    """The values a `Literal` type hint allows (None for any other hint): one vocabulary for a choice, from the
    user's option down to the module that acts on it."""
    for member in _union_members(hint):
        if typing.get_origin(member) is typing.Literal:
            return list(typing.get_args(member))
    return None
