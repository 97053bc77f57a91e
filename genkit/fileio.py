"""Writing files so that a crash never leaves a half-written one where a complete one is expected, and output
paths that cannot be written failing at once, in one line, naming the option or key that gave them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError


def atomic_write(target: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then rename it into place (atomic in one folder)."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def unwritable(path: str | Path, *, folder: bool = False) -> str | None:
    """Why a file (with ``folder``: a folder) could not be written at ``path``, or ``None``; nothing is left behind.

    Tried, not asked: ``os.access`` says yes to root everywhere, also where no folder can be made
    (``/proc``, a name longer than the file system allows). So the folders missing above ``path``
    are created and an empty file is written where the output will go, then all of it is removed.
    """
    path = Path(path).expanduser()
    created: list[Path] = []
    try:
        if path.exists() or path.is_symlink():
            if folder and not path.is_dir():
                return f"{path} is a file, not a folder"
            if not folder and path.is_dir():
                return f"{path} is a folder, not a file"
        target = path if folder else path.parent
        missing, above = [], target
        while not (above.exists() or above.is_symlink()) and above != above.parent:
            missing.append(above)
            above = above.parent
        if not above.is_dir():
            return f"{above} is a file, not a folder"
        for new in reversed(missing):
            try:
                new.mkdir()
            except OSError as exc:
                return f"cannot create the folder {new} ({exc.strerror or exc})"
            created.append(new)
        try:
            handle, probe = tempfile.mkstemp(dir=target, prefix=".genkit-probe-")
        except OSError as exc:
            return f"cannot write a file in {target} ({exc.strerror or exc})"
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:  # asking about the path failed: a name too long, a loop of links
        return f"{exc.strerror or exc}"
    finally:
        for new in reversed(created):
            with contextlib.suppress(OSError):
                new.rmdir()
    return None


def make_folder(folder: str | Path, what: str) -> Path:
    """Create ``folder`` and the folders above it, or fail in one line naming ``what`` (the option or key that
    named it)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = unwritable(folder, folder=True) or (exc.strerror or str(exc))
        raise ConfigError(f"{what} {folder}: cannot create this folder ({reason})") from None
    return folder


def write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically."""
    return atomic_write(target, lambda tmp: tmp.write_text(text))


def write_json(target: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically, making its folder if needed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text(target, json_text(data))


def json_text(data: Any) -> str:
    """Indented, standard JSON: NaN and infinities (which JSON lacks) become the strings "nan", "inf", "-inf"."""
    return json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n"


def finite_json(data: Any) -> Any:
    """``data`` with every non-finite float, however deeply nested, replaced by its name as a string."""
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value) for value in data]
    return data


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
