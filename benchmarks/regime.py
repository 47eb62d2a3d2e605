"""A benchmark regime (teachers, students, recipes, steps) and the machinery its runs share: shipped teachers, the
resumable run records, one distillation run.

`matched.py` defines the matched-grid regime (run by `accuracy.py`) and `geometry_screen.py` the paper-like one on
top of this; both run their students through `distil`, which makes each run with `fofakd compare`'s machinery, so
a record means the same thing in either and a benchmark run is made exactly as a user's comparison makes it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Regime:
    """Everything that changes a run's result.

    Attributes:
        name: Short name shown in reports.
        img_size: Input size (Fashion-MNIST's 28 px are resized to it).
        teachers: {kind: {"model", "kwargs", "epochs", optional "init": kind of a shipped teacher to start from}}.
        students: {kind: {"model", "kwargs"}}.
        teacher_recipe: `fofakd train` settings of the teachers.
        student_recipe: `fofakd distill` settings shared by every student run.
        train_images: Training images the students see.
        min_steps: Optimiser steps a student run takes at least (whole epochs).
        teacher_dir: Where the teachers are shipped, with their teachers.json.
        records: The JSON-lines file of finished runs.
        init_dir: Where the teachers named by an "init" entry are shipped.
    """

    name: str
    img_size: int
    teachers: dict[str, dict[str, Any]]
    students: dict[str, dict[str, Any]]
    teacher_recipe: dict[str, Any]
    student_recipe: dict[str, Any]
    train_images: int
    min_steps: int
    teacher_dir: Path
    records: Path
    init_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other settings that enter the hash

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_images / self.student_recipe["batch_size"])

    @property
    def epochs(self) -> int:
        return math.ceil(self.min_steps / self.steps_per_epoch)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def longer(self, factor: int) -> "Regime":
        """The same regime with `factor` times the steps."""
        return replace(self, name=f"{self.name}, {factor}x steps", min_steps=self.steps * factor)

    def settings(self) -> dict[str, Any]:
        """What keys the records (the matched regime's keys are those it had before regimes had names)."""
        return {"teachers": self.teachers, "teacher_recipe": self.teacher_recipe, "students": self.students,
                "student_recipe": self.student_recipe, "epochs": self.epochs, **self.extra}

    def hash(self) -> str:
        return hashlib.sha1(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:10]


def teacher_index(regime: Regime) -> dict[str, Any]:
    path = regime.teacher_dir / "teachers.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def teacher_weights(regime: Regime, kind: str) -> Path:
    return regime.teacher_dir / f"{kind}.safetensors"


def staged_teacher(regime: Regime, kind: str, work: Path) -> Path:
    """A copy of teacher `kind`'s shipped weights in the work folder, named by their SHA-256: the path recorded in
    each comparison's settings then depends neither on where the checkout lies nor on which checkout runs it, so a
    fresh clone anywhere continues the same runs. The SHA-256 is the shipped index's, which `ensure_teacher` has
    checked against the file before any run."""
    weights = teacher_weights(regime, kind)
    staged = work / "teacher_weights" / f"{kind}-{teacher_index(regime)[kind]['sha256'][:16]}.safetensors"
    if not staged.is_file():
        staged.parent.mkdir(parents=True, exist_ok=True)
        partial = staged.with_suffix(f".{os.getpid()}.part")  # workers may stage at once: each renames its own copy
        shutil.copyfile(weights, partial)
        os.replace(partial, staged)
    return staged


def teacher_command(regime: Regime, kind: str, out: str) -> str:
    spec, r = regime.teachers[kind], regime.teacher_recipe
    kwargs = " ".join(f"{k}={json.dumps(v).replace(' ', '')}" for k, v in spec["kwargs"].items())
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r.items())
    init = f" --checkpoint {_init_weights(regime, kind).relative_to(HERE.parent)}" if spec.get("init") else ""
    return (f"fofakd train --model {spec['model']} --model-kwargs {kwargs} --epochs {spec['epochs']} {flags}{init} "
            f"--out {out}")


def _init_weights(regime: Regime, kind: str) -> Path:
    return regime.init_dir / f"{regime.teachers[kind]['init']}.safetensors"


def ensure_teacher(regime: Regime, kind: str, work: Path, retrain: bool) -> Path:
    """The shipped weights of teacher `kind`, trained (and shipped) first when missing or when asked."""
    from fofakd.classification.config import build_config
    from fofakd.classification.training import run

    spec, index = regime.teachers[kind], teacher_index(regime)
    weights, entry = teacher_weights(regime, kind), index.get(kind)
    fresh = entry and weights.is_file() and all(entry.get(k) == spec.get(k) for k in ("model", "kwargs", "epochs"))
    if fresh and not retrain:
        if sha256(weights) != entry["sha256"]:
            sys.exit(f"{weights} does not match the SHA-256 in {regime.teacher_dir / 'teachers.json'}; restore it "
                     "or pass --retrain-teachers.")
        return weights
    folder = work / "teachers" / regime.hash() / kind
    resume = (folder / "checkpoints" / "last.pt").is_file() and not retrain  # a teacher cut short continues
    init = {"checkpoint": str(_init_weights(regime, kind))} if spec.get("init") else {}
    run(build_config({**regime.teacher_recipe, "model": spec["model"], "model_kwargs": spec["kwargs"], **init,
                      "epochs": spec["epochs"], "out": str(folder), "resume": resume, "overwrite": not resume}),
        "train")
    return ship_teacher(regime, kind, folder)


def ship_teacher(regime: Regime, kind: str, folder: Path) -> Path:
    """Copy a finished teacher run's weights to the regime's teacher folder and record how they were made."""
    spec, summary = regime.teachers[kind], json.loads((folder / "summary.json").read_text())
    index, weights = teacher_index(regime), teacher_weights(regime, kind)
    regime.teacher_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "student.safetensors", weights)
    index[kind] = {**{k: spec[k] for k in ("model", "kwargs", "epochs")}, "recipe": regime.teacher_recipe,
                   **({"init": f"{spec['init']} ({sha256(_init_weights(regime, kind))[:12]})"}
                      if spec.get("init") else {}),
                   "command": teacher_command(regime, kind, f"runs/teachers/{kind}"),
                   "test_top1": summary["test_top1"], "train_time_s": summary["train_time_s"],
                   "sha256": sha256(weights)}
    (regime.teacher_dir / "teachers.json").write_text(json.dumps(index, indent=2) + "\n")
    return weights


def geometry(regime: Regime) -> dict[str, Any]:
    """Every stage grid of every teacher and student at the regime's input size."""
    import fofakd
    from fofakd.features.stages import discover_stages

    size = regime.img_size

    def grids(spec: dict[str, Any]) -> tuple[list[list[int]], str]:
        model = fofakd.create_model(spec["model"], num_classes=10, in_chans=1, img_size=size, **spec["kwargs"])
        stages = discover_stages(model, (1, size, size))
        return [list(s.grid) for s in stages], stages[0].form

    out: dict[str, Any] = {"teachers": {}, "students": {}}
    for kind, spec in regime.teachers.items():
        g, form = grids(spec)
        out["teachers"][kind] = {"grids": g, "form": form,
                                 "ok": min(min(x) for x in g) >= 2 and min(g[0]) >= 7}
    for kind, spec in regime.students.items():
        g, form = grids(spec)
        out["students"][kind] = {"grids": g, "form": form, "ok": form != "tokens" or min(min(x) for x in g) >= 7}
    return out


def load_records(regime: Regime) -> dict[str, dict[str, Any]]:
    """The finished runs of this regime, by key."""
    if not regime.records.is_file():
        return {}
    rows = [json.loads(line) for line in regime.records.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in rows if r["regime"] == regime.hash()}


def distil(regime: Regime, pair: tuple[str, str], method: str, options: dict, seed: int, label: str, work: Path,
           records: dict[str, dict[str, Any]], recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """One distillation run (or its record, when it already finished); `recipe` overrides the regime's student
    recipe for this run (e.g. gradient clipping), and must then be part of `label`.

    The run is made by `fofakd compare`'s machinery, as a user's comparison makes it: each (pair, label) is a
    comparison of one method whose seeds are its run directories, checked against its recorded settings.
    """
    key = record_key(pair, label, seed)
    if key in records:
        return records[key]
    from fofakd.compare.plan import Comparison, check_settings
    from fofakd.compare.runner import run_one
    from fofakd.reports.report import read_run

    teacher, student = regime.teachers[pair[0]], regime.students[pair[1]]
    shared = {
        **regime.student_recipe, **(recipe or {}), "student": student["model"], "student_kwargs": student["kwargs"],
        "teacher": teacher["model"], "teacher_kwargs": teacher["kwargs"],
        "teacher_checkpoint": str(staged_teacher(regime, pair[0], work)), "epochs": regime.epochs,
        # The matched regime's runs began before fofakd fused its optimisers; every regime keeps the for-loop, so
        # that one table holds one implementation (outside the hash, which would discard every record).
        "fused_optimizer": False}
    folder = work / regime.hash() / "compare" / f"{pair[0]}-{pair[1]}" / slug(label)
    comparison = Comparison(folder, [method], seed + 1, shared, {method: options})
    check_settings(comparison)
    run_one(comparison, method, seed)
    run = read_run(comparison.run_dir(method, seed))
    summary, rows = run["summary"], run["metrics"]
    record = {"key": key, "regime": regime.hash(), "pair": f"{pair[0]} -> {pair[1]}", "label": label,
              "method": method, "options": options, **({"recipe": recipe} if recipe else {}), "seed": seed,
              "test_top1": summary["test_top1"], "val_top1": rows[-1]["val_top1"],
              "train_time_s": summary["train_time_s"], "steps": regime.steps,
              "extra_parameters": summary["extra_parameters"], "peak_memory_mb": summary.get("peak_memory_mb"),
              "diagnostics": [{k: v for k, v in r.items() if k.startswith(("diag/", "loss")) or k == "epoch"}
                              for r in rows] if method == "fofa" else []}
    regime.records.parent.mkdir(parents=True, exist_ok=True)
    with open(regime.records, "a") as f:
        f.write(json.dumps(record) + "\n")
    records[key] = record
    return record


def record_key(pair: tuple[str, str], label: str, seed: int) -> str:
    return f"{pair[0]}->{pair[1]}|{label}|seed{seed}"


def claim(work: Path, job: str) -> bool:
    """Take `job` for this process (work/claims/<job> holds its pid), so that several worker processes can share
    one job list; False while another live process holds it. A claim left by a dead process is taken over."""
    path = _claim_file(work, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(path.read_text())
                os.kill(holder, 0)
                if holder != os.getpid():
                    return False
            except (ValueError, OSError):
                pass  # unreadable, or its process is gone: stale
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(work: Path, job: str) -> None:
    _claim_file(work, job).unlink(missing_ok=True)


def _claim_file(work: Path, job: str) -> Path:
    return work / "claims" / slug(job)


def slug(text: str) -> str:
    """`text` as a file name: every character but letters and digits becomes an underscore."""
    return "".join(c if c.isalnum() else "_" for c in text)



@dataclass(frozen=True, eq=False)
class Job:
    """One student run of a benchmark: `recipe` overrides the regime's student recipe and is then part of `label`."""

    regime: Regime
    pair: tuple[str, str]
    label: str
    method: str
    options: dict[str, Any]
    recipe: dict[str, Any] | None = None
    seed: int = 0

    @property
    def key(self) -> str:
        return record_key(self.pair, self.label, self.seed)

    def done(self) -> bool:
        return self.key in load_records(self.regime)


def run_shared(jobs: Callable[[], list[Job]], work: Path, after_each: Callable[[], None]) -> None:
    """Run every job of `jobs()` that has no record yet, in order, sharing the list with other processes started
    alike: each job (and each teacher it needs) is claimed in `work` while it runs, and a job another process holds
    is retried until every job is recorded. `jobs` is called again after each run, so a list that depends on
    earlier results (a recipe chosen on validation) grows as they land."""
    start = time.perf_counter()
    while pending := [job for job in jobs() if not job.done()]:
        progressed = False
        for job in pending:
            name = f"{job.regime.hash()}|{job.key}"
            teacher = f"teacher|{job.regime.hash()}|{job.pair[0]}"
            if job.done() or not claim(work, teacher):
                continue  # finished meanwhile, or another process is training this teacher
            try:
                ensure_teacher(job.regime, job.pair[0], work, retrain=False)  # trained and shipped at first use
            finally:
                release(work, teacher)
            if not claim(work, name):
                continue
            try:
                record = distil(job.regime, job.pair, job.method, job.options, job.seed, job.label, work,
                                load_records(job.regime), job.recipe)
            finally:
                release(work, name)
            progressed = True
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] {job.regime.name}: {' -> '.join(job.pair)} "
                  f"{job.label} seed {job.seed}: val {record['val_top1']:.2f} test {record['test_top1']:.2f}",
                  flush=True)
            after_each()
            break  # the list may have grown or been reordered: start again from its top
        if not progressed:
            time.sleep(60)
