"""Writing files so that a crash never leaves a half-written one where a complete one is expected, and output
paths that cannot be written failing at once, in one line, naming the option or key that gave them."""

from __future__ import annotations

import hashlib
import json
import math
import os
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
    """Why a file (with ``folder``: a folder) could not be written at ``path``, or ``None``; nothing is created.

    Catches what can be seen beforehand: a file where a folder is needed (``path`` itself or a folder
    above it), a folder where the file should go, and a nearest existing folder that is not writable.
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
    above = path if folder else path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, not a folder"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"{above} is not writable"
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
