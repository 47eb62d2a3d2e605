"""What a comparison runs: its settings (checked against the folder's earlier ones) and one run per method and
seed, each an ordinary `fofakd distill` run directory under the comparison's folder."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..classification.config import ClassificationConfig, build_config
from ..engine.config import fields_of, parse_key_values
from ..errors import FofakdError
from ..files import write_text

SETTINGS_FILE = "compare.yaml"
COMPARE_KEYS = ("methods", "seeds", "reference", "parallel")
# Distill options a comparison sets per run, or that only concern one invocation.
PER_RUN = ("method", "seed", "out", "resume", "overwrite", "stop_after", "method_options")


@dataclass
class Comparison:
    """The settings of one comparison.

    Attributes:
        out: The comparison's folder; run (method, seed) lives in `out/method/seed{seed}`.
        methods: Method names, in report order.
        seeds: How many seeds (0 .. seeds-1); one seed fixes the student's initial weights and the data order for
            every method, so runs pair up across methods.
        options: The `fofakd distill` options shared by every run.
        method_options: Per method, its options.
        reference: The method the others are compared with (None: the best on validation).
        parallel: How many runs at once.
    """

    out: Path
    methods: list[str]
    seeds: int
    options: dict[str, Any]
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: str | None = None
    parallel: int = 1

    def settings(self) -> dict[str, Any]:
        """What the folder records and a rerun must repeat."""
        return {"methods": self.methods, "seeds": self.seeds, "options": self.options,
                "method_options": {m: self.method_options.get(m, {}) for m in self.methods}}

    def run_dir(self, method: str, seed: int) -> Path:
        return self.out / method / f"seed{seed}"

    def runs(self) -> list[tuple[str, int]]:
        """(method, seed) of every run, seed by seed, so that early seeds finish first."""
        return [(m, s) for s in range(self.seeds) for m in self.methods]

    def run_options(self, method: str, seed: int) -> dict[str, Any]:
        """The complete `fofakd distill` options of one run."""
        return {**self.options, "method": method, "method_options": dict(self.method_options.get(method, {})),
                "seed": seed, "out": str(self.run_dir(method, seed))}


def split_method_options(pairs: dict[str, Any], methods: list[str]) -> dict[str, dict[str, Any]]:
    """`{"fofa:dim": 64, "temperature": 2}` -> per method; a key without `method:` goes to every method that has
    the option."""
    from ..method_validation import load_method_options

    catalogue = load_method_options()
    out: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for key, value in pairs.items():
        method, sep, option = key.rpartition(":")
        if sep:
            if method not in methods:
                raise FofakdError(f"--method-options names '{method}', which is not among --methods "
                                  f"{','.join(methods)}; write METHOD:KEY=VALUE for a compared method.")
            out[method][option] = value
            continue
        takers = [m for m in methods if option in catalogue.get(m, {})]
        if not takers:
            raise FofakdError(f"no compared method has the option '{option}'; write METHOD:{option}=VALUE, or see "
                              "`fofakd methods`.")
        for m in takers:
            out[m][option] = value
    return out


def _yaml_method_options(value: Any, methods: list[str]) -> dict[str, dict[str, Any]]:
    if isinstance(value, dict) and value and all(k in methods and isinstance(v, dict) for k, v in value.items()):
        return {m: dict(value.get(m, {})) for m in methods}
    if isinstance(value, dict):
        return split_method_options(value, methods)
    raise FofakdError("method_options in the YAML file must be a mapping: {METHOD: {KEY: VALUE}} or {KEY: VALUE}.")


def comparison_from_args(args: argparse.Namespace) -> Comparison:
    """The comparison the command line (and its YAML file, if any) describes, every run's options checked."""
    from ..methods.registry import list_methods

    fields = fields_of(ClassificationConfig)
    given = {k: v for k, v in vars(args).items() if k in fields}
    for key, value in given.items():  # KEY=VALUE flags (model kwargs) as mappings, as `fofakd distill` reads them
        if key != "method_options" and isinstance(value, list) and fields[key].default is dataclasses.MISSING:
            given[key] = parse_key_values(value)
    for key in ("method", "seed", "resume", "overwrite"):
        if key in given:
            raise FofakdError(f"fofakd compare sets --{key} itself; pass --methods and --seeds instead"
                              + (" (a rerun resumes on its own)." if key in ("resume", "overwrite") else "."))
    file_values: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise FofakdError(f"config file '{path}' does not exist; check the path.")
        file_values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(file_values, dict):
            raise FofakdError(f"'{path}' does not hold a YAML mapping of options; write KEY: VALUE lines.")
    compare = {k: file_values.pop(k) for k in COMPARE_KEYS if k in file_values}
    compare.update({k: getattr(args, k) for k in COMPARE_KEYS if getattr(args, k, None) is not None})
    methods = compare.get("methods")
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m]
    if not methods:
        raise FofakdError("fofakd compare needs the methods to compare: pass --methods scratch,kd,fofa (or methods: "
                          "in the YAML file).")
    unknown = [m for m in methods if m not in list_methods()]
    if unknown:
        raise FofakdError(f"method '{unknown[0]}' is not known; choose among {', '.join(list_methods())}.")
    yaml_method_options = _yaml_method_options(file_values.pop("method_options", {}) or {}, methods)
    cli_method_options = split_method_options(parse_key_values(given.pop("method_options", []) or []), methods)
    method_options = {m: {**yaml_method_options[m], **cli_method_options[m]} for m in methods}
    options = {k: v for k, v in {**file_values, **given}.items() if k not in PER_RUN}
    out = given.get("out") or file_values.get("out") or getattr(args, "run_dir", None)
    if not out:
        raise FofakdError("fofakd compare needs a folder for its runs: pass --out DIR.")
    seeds, parallel = int(compare.get("seeds", 3)), int(compare.get("parallel", 1))
    if seeds < 1 or parallel < 1:
        raise FofakdError("--seeds and --parallel must be at least 1.")
    comparison = Comparison(Path(out), list(methods), seeds, options, method_options, compare.get("reference"),
                            parallel)
    if comparison.reference is not None and comparison.reference not in methods:
        raise FofakdError(f"--reference '{comparison.reference}' is not among --methods {','.join(methods)}.")
    for method in methods:  # every run's options are checked before anything runs
        build_config(comparison.run_options(method, 0))
    return comparison


def check_settings(comparison: Comparison) -> None:
    """Record the settings in a new folder; in an earlier comparison's folder, refuse any changed setting (more
    methods or more seeds extend it)."""
    path = comparison.out / SETTINGS_FILE
    now = comparison.settings()
    if path.is_file():
        before = yaml.safe_load(path.read_text()) or {}
        for key in ("options", "method_options"):
            old, new = before.get(key, {}), now[key]
            for name in sorted(set(old) | set(new)):
                if key == "method_options" and name not in old:
                    continue  # a method added to the comparison
                if old.get(name) != new.get(name):
                    shown = name if key == "options" else f"method options of {name}"
                    raise FofakdError(
                        f"'{comparison.out}' holds a comparison made with {shown} {old.get(name)!r}, not "
                        f"{new.get(name)!r}; repeat its settings to continue it, or pass a new --out.")
        now = {**now, "seeds": max(now["seeds"], before.get("seeds", 0)),
               "methods": list(dict.fromkeys([*before.get("methods", []), *now["methods"]])),
               "method_options": {**before.get("method_options", {}), **now["method_options"]}}
    elif comparison.out.exists() and any(comparison.out.iterdir()):
        raise FofakdError(f"--out '{comparison.out}' holds files but no {SETTINGS_FILE}, so it is not a fofakd "
                          "comparison; pass a new or empty folder.")
    comparison.out.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(now, sort_keys=False))
