"""Every declared option, of every method and of the run config, refuses values of the wrong kind or out of range
in one sentence, before anything is built or written."""
import math
import typing

import pytest
import yaml

from fofakd.cli import main
from fofakd.classification.config import ClassificationConfig
from fofakd.engine.config import check_value, fields_of
from fofakd.errors import FofakdError
from fofakd.method_validation import load_method_options
from fofakd.methods import build_distiller
from fofakd.options import PROBABILITY, Range, check_option
from sampling import quick_sample

METHOD_OPTIONS = load_method_options()
WRONG_FOR = {  # a value of each other kind
    "float": [[1, 2], {"a": 1}, "hot", True],
    "int": [[1, 2], {"a": 1}, "four", 2.5, True],
    "bool": [[1], {"a": 1}, "yes please", 3],
    "str": [[1], {"a": 1}, 3],
    "int list": [3, {"a": 1}, "0,1", [0.5]],
    "float list": [{"a": 1}, "0.1", [True]],
}


def _wrong_values(spec: dict) -> list:
    """Values no declared kind of the option accepts, and one just outside its range."""
    kinds = spec["kinds"]
    values = [v for kind in kinds for v in WRONG_FOR.get(kind, [])
              if not any(_accepts(k, v) for k in kinds)]
    if spec.get("choices"):
        values.append("not-" + spec["choices"][0])  # a string, but none of the option's words
    if spec["range"] is not None:
        low, _, low_included, _ = spec["range"]
        below = low - 1 if low_included else low
        values.append(below if "int" in kinds or "int list" in kinds else float(below))
    return values


def _accepts(kind: str, value) -> bool:
    try:
        check_option("x", value, [kind])
        return True
    except FofakdError:
        return False


CASES = [(method, option, value) for method, options in METHOD_OPTIONS.items() for option, spec in options.items()
         for value in _wrong_values(spec)]


def test_every_option_has_cases():
    covered = {(m, o) for m, o, _ in CASES}
    assert covered == {(m, o) for m, options in METHOD_OPTIONS.items() for o in options}


@pytest.mark.parametrize("method,option,value", quick_sample(
    CASES, lambda _, case: case[0] == "kd" or case[:2] in {("fofa", "prompt_reshape"), ("fofa", "dim")},
    ids=[f"{m}-{o}-{v!r}" for m, o, v in CASES]))
def test_a_wrong_method_option_is_refused_everywhere(method, option, value, tmp_path, capsys):
    expected = f"method '{method}' option '{option}' must be "
    # From a YAML file (values keep their YAML kinds: lists, mappings, booleans) ...
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"method": method, "method_options": {option: value}}))
    teacher = tmp_path / "teacher.safetensors"  # never read: the options are checked first
    teacher.write_bytes(b"")
    capsys.readouterr()
    assert main(["distill", "--config", str(config), "--teacher", "resnet10t", "--teacher-checkpoint", str(teacher),
                 "--student", "resnet10t", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fofakd: error: {expected}") and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml", "teacher.safetensors"]
    # ... and from Python, before any module is built (no models needed to refuse it).
    with pytest.raises(FofakdError, match=f"^{expected}"):
        build_distiller(method, teacher=None, student=None, input_size=(1, 28, 28), **{option: value})


def test_right_values_pass_and_widen():
    assert check_option("x", 2, ["float"]) == 2.0 and isinstance(check_option("x", 2, ["float"]), float)
    assert check_option("x", "1e-3", ["float"]) == 1e-3  # PyYAML reads 1e-3 (no dot) as text
    assert check_option("x", [1, 2], ["float", "float list"]) == [1.0, 2.0]
    assert check_option("x", None, ["int list", "none"]) is None
    assert check_value("hflip", 1.0, ClassificationConfig) == 1.0
    assert check_value("lr", "1e-3", ClassificationConfig) == 1e-3
    assert PROBABILITY.holds(1.0) and not Range(0, 1).holds(1.0) and not Range(0, None, False).holds(0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(FofakdError, match="must be a finite number"):
        check_value("smoothing", value, ClassificationConfig)


@pytest.mark.parametrize("name", quick_sample([n for n in fields_of(ClassificationConfig) if n != "task"],
                                               lambda _, name: name in ("lr", "data", "epochs", "method_options")))
def test_a_wrong_config_value_is_refused_in_one_sentence(name, tmp_path, capsys):
    hint = typing.get_type_hints(ClassificationConfig)[name]
    kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)  # `str | None` -> str
    wrong = [[1, 2], {"a": 1} if kind is not dict else [1], "text" if kind is not str else 5]
    for value in wrong:
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump({"model": "resnet10t", name: value}))
        capsys.readouterr()
        assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2, (name, value)
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"fofakd: error: --{name.replace('_', '-')} / config key '{name}' must be "), err
        assert len(err.splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]
