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
from safetensors.torch import save

from ..errors import FofakdError
from ..files import write_atomic, write_text
from ..models.spec_file import SPEC_KEY, TIMM_WEIGHTS, checkpoint_spec, is_timm_folder, timm_folder_spec

RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "student.safetensors", "student.json", "tracker.json")
RUN_DIRS = ("checkpoints", "tensorboard", "mlruns", "wandb")  # the last two: the trackers' local files
MARKER = ".fofakd-run"  # written when a run starts: the folder's run files are fofakd's own
# Config keys every fofakd run's config.yaml has had: how a run made before the marker existed is recognised.
_RUN_CONFIG_KEYS = {"method", "method_options", "epochs", "out", "task"}


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
        checkpoints = self.checkpoints.is_dir() and any(self.checkpoints.glob("*.pt"))
        return checkpoints or any((self.path / name).exists() for name in ("summary.json", "student.safetensors"))

    def is_fofakd_run(self) -> bool:
        """Whether fofakd made this folder's run files: its marker is there, or (for runs made before the marker)
        its config.yaml is a fofakd run's."""
        if (self.path / MARKER).is_file():
            return True
        try:
            config = yaml.safe_load((self.path / "config.yaml").read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return False
        return isinstance(config, dict) and _RUN_CONFIG_KEYS <= set(config)

    def foreign_files(self) -> list[str]:
        """The names in the folder when it is not a fofakd run's (none when it is, or does not exist)."""
        if not self.path.is_dir() or self.is_fofakd_run():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name != self.lock_file.name)

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
        if self.path.is_symlink() and not self.path.exists():
            raise FofakdError(f"--out '{self.path}' is a link to nothing (or a loop of links); remove the link or "
                              "choose another --out.")
        if self.path.exists() and not self.path.is_dir():
            raise FofakdError(f"output path '{self.path}' is a file; choose a directory for --out.")
        existing = next(p for p in (self.path.absolute(), *self.path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise FofakdError(f"--out '{self.path}' lies under the file '{existing}'; choose a directory for --out.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise FofakdError(f"'{existing}' is not writable, so the run cannot be written to '{self.path}'; choose "
                              "a writable --out.")
        self._refuse_if_held()
        if resume and overwrite:
            raise FofakdError("--resume continues a run and --overwrite replaces it; pass one of them.")
        if resume:
            if self.last.is_file():
                return
            if self.best.is_file():
                raise FofakdError(f"'{self.path}' has no checkpoints/last.pt to resume, but has best.pt: copy it to "
                                  "last.pt to resume from the best epoch, or pass --overwrite to start again.")
            raise FofakdError(f"there is no checkpoint to resume in '{self.path}' (no checkpoints/last.pt); "
                              "start the run without --resume.")
        foreign = self.foreign_files()
        clashing = [name for name in foreign if name in (*RUN_FILES, *RUN_DIRS)]
        if clashing:
            raise FofakdError(f"'{self.path}' holds {', '.join(clashing)}, which fofakd did not write and a run "
                              "would replace; choose another --out.")
        if foreign and not overwrite:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise FofakdError(f"'{self.path}' holds files fofakd did not write ({shown}); choose an empty or new "
                              "--out, or pass --overwrite to write the run beside them.")
        if self.holds_run() and not overwrite:
            raise FofakdError(f"'{self.path}' already holds a run; pass --resume to continue it, --overwrite to "
                              "replace it, or choose another --out.")

    def start_new(self) -> None:
        """Clear an old fofakd run's files (only reached with --overwrite, or after a run that failed before its
        first checkpoint) and mark the folder as a fofakd run's; files fofakd did not write stay."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.is_fofakd_run():
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        write_text(self.path / MARKER, "This folder holds a fofakd run; fofakd replaces its run files only when "
                                       "told to (--overwrite).\n")

    def write_config(self, config: dict[str, Any]) -> None:
        write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def update_config(self, changes: dict[str, Any]) -> None:
        """Rewrite config.yaml with `changes` (what a resumed run may change)."""
        path = self.path / "config.yaml"
        if path.is_file():
            self.write_config({**(yaml.safe_load(path.read_text()) or {}), **changes})

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the run's history (so a resumed run never duplicates an epoch)."""
        write_text(self.metrics, "".join(json.dumps(row) + "\n" for row in history))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        write_text(self.path / name, json.dumps(data, indent=2) + "\n")


def follow_umask(path: str | Path) -> None:
    """Give a file the mode the user's umask asks for (safetensors writes its files 0600, readable by no one else)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_student(student: torch.nn.Module, spec: dict[str, Any], folder: str | Path) -> Path:
    """The bare student as student.safetensors, its spec embedded in the file's metadata and beside it as
    student.json (for people and older readers)."""
    folder = Path(folder)
    kept = "the run's checkpoints/last.pt is intact, so --resume writes the student again"
    weights = write_weights(student, spec, folder / "student.safetensors", kept)
    write_text(folder / "student.json", json.dumps(spec, indent=2) + "\n", kept)
    return weights


def write_weights(model: torch.nn.Module, spec: dict[str, Any], path: Path, kept: str = "") -> Path:
    """`model`'s state dict as one self-describing safetensors file (the spec in its metadata), with the umask;
    `kept` says what the user still has if the write fails (see `fofakd.files.write_atomic`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    data = save(state, metadata={"model": spec["model"], SPEC_KEY: json.dumps(spec)})  # written below by Python,
    # so a full disk is an OSError with its reason rather than safetensors' own error type

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        follow_umask(tmp)

    return write_atomic(path, write, kept)


def read_student_spec(checkpoint: str | Path) -> tuple[dict[str, Any], Path]:
    """The spec and weights file of a run directory or of an exported or run's .safetensors file."""
    path = Path(checkpoint)
    if is_timm_folder(path):
        return timm_folder_spec(path), path / TIMM_WEIGHTS
    weights = path / "student.safetensors" if path.is_dir() else path
    if not weights.is_file():
        unfinished = (path / "checkpoints" / "last.pt").is_file()
        raise FofakdError(f"'{path}' holds no student.safetensors; "
                          + ("the run has not finished: resume it to the end, or pass its checkpoints/last.pt."
                             if unfinished else "pass a finished fofakd run directory or the file."))
    if weights.suffix != ".safetensors":
        raise FofakdError(f"'{weights}' is not a .safetensors file; pass a fofakd run directory, its "
                          "student.safetensors, a safetensors export or a training checkpoint (.pt).")
    spec = checkpoint_spec(weights)
    if spec is None:
        raise FofakdError(f"'{weights}' does not say which model it holds (no fofakd spec in it and no student.json "
                          "beside it); export it with `fofakd export` from its run directory.")
    return spec, weights
