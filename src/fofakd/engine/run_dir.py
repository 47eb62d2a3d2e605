"""The run directory: config, metrics, TensorBoard events, checkpoints and the final bare student."""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from ..errors import FofakdError
from ..models.spec_file import SPEC_KEY, checkpoint_spec

RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "student.safetensors", "student.json")
RUN_DIRS = ("checkpoints", "tensorboard")


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.metrics = self.path / "metrics.jsonl"
        self.tensorboard = self.path / "tensorboard"

    def holds_run(self) -> bool:
        """Whether the folder holds something worth keeping: a checkpoint or a finished run's results. The leftovers
        of a run that failed before its first checkpoint are not, so the same command can start it again."""
        return any(p.exists() for p in (self.last, self.path / "summary.json", self.path / "student.safetensors"))

    @property
    def lock_file(self) -> Path:
        return self.path / ".fofakd.lock"

    def _live_holder(self) -> str | None:
        """'pid N on HOST' of the live run holding the folder, or None (no lock, or a stale one from a killed run)."""
        try:
            pid_text, host = self.lock_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        if host != socket.gethostname():
            return f"pid {pid} on {host}"  # another machine's process cannot be checked: assume it lives
        if pid == os.getpid():
            return None  # left by an earlier run of this very process that ended without releasing it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
        return f"pid {pid}"

    def _refuse_if_held(self) -> None:
        holder = self._live_holder()
        if holder is not None:
            raise FofakdError(f"'{self.path}' is in use by another fofakd run ({holder}); wait for it to end or stop "
                              "it, or choose another --out.")

    def acquire(self) -> None:
        """Take the folder's lock, clearing a stale one; refuse when a live run holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_if_held()
                self.lock_file.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            return
        raise FofakdError(f"could not take the lock of '{self.path}'; remove {self.lock_file.name} and try again.")

    def release(self) -> None:
        if self._owns_lock():
            self.lock_file.unlink(missing_ok=True)

    def _owns_lock(self) -> bool:
        try:
            return int(self.lock_file.read_text().split()[0]) == os.getpid()
        except (OSError, ValueError, IndexError):
            return False

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse a directory the run may not use; changes nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise FofakdError(f"output path '{self.path}' is a file; choose a directory for --out.")
        existing = next(p for p in (self.path.absolute(), *self.path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise FofakdError(f"--out '{self.path}' lies under the file '{existing}'; choose a directory for --out.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise FofakdError(f"'{existing}' is not writable, so the run cannot be written to '{self.path}'; choose "
                              "a writable --out.")
        self._refuse_if_held()
        if resume:
            if not self.last.is_file():
                raise FofakdError(f"there is no checkpoint to resume in '{self.path}' (no checkpoints/last.pt); "
                                  "start the run without --resume.")
        elif self.holds_run() and not overwrite:
            raise FofakdError(f"'{self.path}' already holds a run; pass --resume to continue it, --overwrite to "
                              "replace it, or choose another --out.")

    def start_new(self) -> None:
        """Clear an old run (only reached with --overwrite) and create the directory."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(self.path / name, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def write_config(self, config: dict[str, Any]) -> None:
        (self.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def update_config(self, changes: dict[str, Any]) -> None:
        """Rewrite config.yaml with `changes` (what a resumed run may change)."""
        path = self.path / "config.yaml"
        if path.is_file():
            self.write_config({**(yaml.safe_load(path.read_text()) or {}), **changes})

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the run's history (so a resumed run never duplicates an epoch)."""
        tmp = self.metrics.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
        tmp.replace(self.metrics)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2) + "\n")


def follow_umask(path: str | Path) -> None:
    """Give a file the mode the user's umask asks for (safetensors writes its files 0600, readable by no one else)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_student(student: torch.nn.Module, spec: dict[str, Any], folder: str | Path) -> Path:
    """The bare student as student.safetensors, its spec embedded in the file's metadata and beside it as
    student.json (for people and older readers)."""
    folder = Path(folder)
    weights = write_weights(student, spec, folder / "student.safetensors")
    (folder / "student.json").write_text(json.dumps(spec, indent=2) + "\n")
    return weights


def write_weights(model: torch.nn.Module, spec: dict[str, Any], path: Path) -> Path:
    """`model`'s state dict as one self-describing safetensors file (the spec in its metadata), with the umask."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"model": spec["model"], SPEC_KEY: json.dumps(spec)})
    follow_umask(path)
    return path


def read_student_spec(checkpoint: str | Path) -> tuple[dict[str, Any], Path]:
    """The spec and weights file of a run directory or of an exported or run's .safetensors file."""
    path = Path(checkpoint)
    weights = path / "student.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise FofakdError(f"'{path}' holds no student.safetensors; pass a finished fofakd run directory or the file.")
    spec = checkpoint_spec(weights)
    if spec is None:
        raise FofakdError(f"'{weights}' does not say which model it holds (no fofakd spec in it and no student.json "
                          "beside it); export it with `fofakd export` from its run directory.")
    return spec, weights
