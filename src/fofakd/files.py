"""Writing files safely: never over a file fofakd did not write, never half a file.

Every file fofakd writes (checkpoints, run files, exports, recipes, plots, reports; not TensorBoard's event files
or a tracker's own files, which those libraries write) goes through `write_atomic` or `write_folder_atomic`:
the content goes to a temporary file in the target's folder, which is then renamed over the target, so a crash or
a full disk leaves the old file as it was and no partial file behind. Where a target may already exist,
`check_target` decides first whether it may be replaced.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .errors import FofakdError, first_line


def check_target(path: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """Refuse a target file that is a folder, a broken or looping link, or (unless `overwrite`) an existing file.

    Args:
        path: The file about to be written.
        overwrite: Whether the user asked to replace an existing file (`--overwrite`).
        flag: The flag that named the path, for the message.
    """
    path = Path(path)
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise FofakdError(f"{flag} '{path}' is a link to nothing (or a loop of links); remove the link or "
                              f"choose another {flag}.") from None
    if path.is_dir():
        example = path / ("out" + path.suffix)
        raise FofakdError(f"{flag} '{path}' is a folder; give the file to write, e.g. '{example}'.")
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise FofakdError(f"{flag} '{path}' lies under the file '{existing}'; choose a path in a folder.")
    if path.exists() and not overwrite:
        raise FofakdError(f"'{path}' already exists; pass --overwrite to replace it, or choose another {flag}.")
    return path


def write_atomic(path: str | Path, write: Callable[[Path], None], kept: str = "") -> Path:
    """Write `path` by calling `write(temporary path)`, then renaming the temporary file into place.

    Args:
        path: The file to write.
        write: Writes the whole content to the path it is given.
        kept: What the user still has if writing fails (e.g. "the last good checkpoint X is intact"); the
            default says the old file, if any, is unchanged.

    Raises:
        FofakdError: Writing failed (no space, no permission, the folder removed); the message names the file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        # torch's C++ writers (TorchScript, ONNX) report a failed write as a RuntimeError; other errors are bugs.
        if isinstance(err, RuntimeError) and "writ" not in str(err).lower():
            raise
        reason = getattr(err, "strerror", None) or first_line(err, 200)
        left = kept or ("the previous file is unchanged" if path.exists() else "nothing was left behind")
        raise FofakdError(f"could not write '{path}' ({reason}); {left}; free space or fix the folder's permissions "
                          "and run the command again.") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def write_text(path: str | Path, text: str, kept: str = "") -> Path:
    """`text` written to `path` atomically (see `write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text), kept)


def write_folder_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write the folder `path` by calling `write(temporary folder)`, then putting it in place of any old one.

    The old folder is set aside until the new one is in place, so a failure leaves it as it was.

    Raises:
        FofakdError: Writing failed; the message names the folder.
    """
    import shutil

    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as err:
        if old.exists() and not path.exists():
            os.replace(old, path)
        left = "the previous folder is unchanged" if path.exists() else "nothing was left behind"
        raise FofakdError(f"could not write '{path}' ({err.strerror or err}); {left}; free space or fix the "
                          "folder's permissions and run the command again.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path

