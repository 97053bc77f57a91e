"""Writing files so that a crash never leaves a half-written one where a complete one is expected, and output
paths that cannot be written failing at once, in one line, naming the option or key that gave them.

Every file genkit writes goes through :func:`atomic_write`: into a temporary file beside the target,
then renamed into place. What the rename would destroy is never renamed over: a character device
(``/dev/null``, a terminal) or a named pipe, also through a link (``/dev/stdout``), is written in
place, and a block device or a socket is refused. A write the system refuses (a full disk, the file
size limit, an I/O error) leaves as an ``OSError`` naming the file, whichever library met it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from genkit.errors import ConfigError, GenkitError, first_line

#: what stands at a path and is written in place rather than replaced
IN_PLACE = ("character device", "named pipe")
#: how a Rust library (safetensors) words the system's refusal: "I/O error: File too large (os error 27)"
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
#: a link into a process's open files (``/dev/stdout`` leads to ``/proc/self/fd/1``)
DESCRIPTOR_LINK = re.compile(r"^/(proc/[^/]+|dev)/fd/(\d+)$")


def atomic_write(target: str | Path, write: Callable[[Path], Any], *, in_place: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then rename it into place (atomic in one folder).

    The file gets the mode of any new file (``0o666`` less the umask), whatever ``write`` gave it.
    A character device or a named pipe at ``target`` is written in place, ``write(target)``, and an
    open file of the process (``/dev/stdout``) through its descriptor, unless ``in_place`` is false (a
    writer that itself renames, as safetensors does): then it is refused like a block device or a
    socket, in one line. A link to a regular file keeps pointing at its new content.
    """
    target = Path(target)
    kind, descriptor = special_kind(target), _descriptor(target)
    if (kind in IN_PLACE or descriptor is not None) and not in_place:
        raise ConfigError(f"{target}: is not a regular file; genkit writes this file only as a regular file")
    if descriptor is not None:
        with writing(target):
            _write_to_descriptor(descriptor, write, target.name)
        return target
    if kind in IN_PLACE:
        with writing(target):
            write(target)
        return target
    if kind is not None:
        raise ConfigError(f"{target}: is a {kind}; genkit writes regular files, character devices and named pipes only")
    final = Path(os.path.realpath(target)) if target.is_symlink() else target
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        with writing(target, tmp):
            write(tmp)
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def special_kind(path: Path) -> str | None:
    """What stands at ``path`` (following links) when it is neither absent, a regular file nor a folder."""
    try:
        mode = path.stat().st_mode
    except OSError:  # absent, a dangling link, or not reachable: the write itself will say
        return None
    for test, kind in (
        (stat.S_ISCHR, "character device"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return kind
    return None


def _descriptor(path: Path) -> int | None:
    """The open file of this process that ``path`` leads to (``/dev/stdout``: 1), else ``None``."""
    path = Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on links in a row
        match = DESCRIPTOR_LINK.match(str(path))
        if match and match.group(1) in ("dev", "proc/self", f"proc/{os.getpid()}"):
            return int(match.group(2))
        if not path.is_symlink():
            return None
        path = Path(os.path.normpath(path.parent / os.readlink(path)))
    return None


def _write_to_descriptor(descriptor: int, write: Callable[[Path], Any], name: str) -> None:
    """Write through the open file ``descriptor`` itself, after what the process printed there: opening its name
    again (``/proc/self/fd/1``) would start at the beginning of a redirected file, over what stands there."""
    with tempfile.TemporaryDirectory(prefix="genkit-") as folder:
        tmp = Path(folder) / name
        write(tmp)
        sys.stdout.flush()
        sys.stderr.flush()
        with tmp.open("rb") as source, os.fdopen(os.dup(descriptor), "wb") as sink:
            shutil.copyfileobj(source, sink)


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask (``0o644`` under the usual ``022``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def writing(path: str | Path, tmp: str | Path | None = None) -> Iterator[None]:
    """Around writing ``path`` (through ``tmp``, if given): the system's refusal, whichever library met it, leaves as an
    ``OSError`` naming ``path``; anything else leaves as it came."""
    try:
        yield
    except GenkitError:
        raise
    except Exception as exc:
        refused = refusal(exc)
        if refused is None or refused is exc and exc.filename not in (None, str(tmp)):
            raise  # no refusal, or one about another file (the source of a copy)
        raise OSError(refused.errno or errno.EIO, refused.strerror or first_line(exc), str(path)) from None


def refusal(exc: BaseException) -> OSError | None:
    """The system's refusal of a write behind ``exc``, or ``None`` when it is not one.

    Python raises the ``OSError`` itself; torch's serializer raises a ``RuntimeError`` ("unexpected
    pos …") while handling the ``OSError`` of the file object it writes to; safetensors raises a
    ``SafetensorError`` whose message alone names the error ("… (os error 28)").
    """
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    match = RUST_OS_ERROR.search(str(exc))
    if match:
        code = int(match.group(1))
        return OSError(code, os.strerror(code))
    return None


def unwritable(path: str | Path, *, folder: bool = False) -> str | None:
    """Why a file (with ``folder``: a folder) could not be written at ``path``, or ``None``; nothing is left behind.

    Tried, not asked: ``os.access`` says yes to root everywhere, also where no folder can be made
    (``/proc``, a name longer than the file system allows). So the folders missing above ``path``
    are created and an empty file is written where the output will go, then all of it is removed. What
    :func:`atomic_write` writes in place (a device, a pipe, ``/dev/stdout``) is only asked about.
    """
    path = Path(path).expanduser()
    problem = f"{path} keeps appearing and vanishing"
    for _ in range(PROBE_ATTEMPTS):
        try:
            return _unwritable_once(path, folder)
        except _ProbeRaced as raced:  # another process may be probing the same folders at the same moment: again
            problem = str(raced) or problem
        except OSError as exc:  # asking about the path failed: a name too long, a loop of links
            return f"{exc.strerror or exc}"
    return problem  # the same refusal every time: the system's, not a race


def _unwritable_once(path: Path, folder: bool) -> str | None:
    """:func:`unwritable`, once."""
    if path.exists() or path.is_symlink():
        try:
            kind = special_kind(path)
            if folder and not path.is_dir() or not folder and path.is_dir():
                if not (path.exists() or path.is_symlink()):
                    raise _ProbeRaced  # a folder another process's probe has just removed
                return f"{path} is a {kind or 'file'}, not a folder" if folder else f"{path} is a folder, not a file"
            if kind in IN_PLACE or not folder and _descriptor(path) is not None:  # written in place: nothing beside
                return None if os.access(path, os.W_OK) else f"cannot write to {path} (Permission denied)"
        except FileNotFoundError:
            raise _ProbeRaced from None
        if kind is not None:
            return f"{path} is a {kind}; genkit writes regular files, character devices and named pipes only"
    return _probe_folder(path if folder else path.parent)


#: how often :func:`unwritable` looks again when another process probing the same path gets in its way
PROBE_ATTEMPTS = 20


class _ProbeRaced(Exception):
    """A folder :func:`_probe_folder` needed appeared or vanished under it, as when another process probes it too;
    the message is what to report if it happens every time."""


def _probe_folder(target: Path) -> str | None:
    """Create the folders missing down to ``target``, write and remove an empty file in it, remove the folders.

    Several processes may probe the same path at once (every rank under torchrun checks ``--out``): a folder one
    of them creates, or removes while the other still needs it, raises :class:`_ProbeRaced` to look again (as
    does a system that answers "no such folder" to every ``mkdir``, such as ``/proc``, until the attempts run out).
    """
    created: list[Path] = []
    try:
        missing, above = [], target
        while not (above.exists() or above.is_symlink()) and above != above.parent:
            missing.append(above)
            above = above.parent
        if not above.is_dir():
            if not (above.exists() or above.is_symlink()):
                raise _ProbeRaced  # removed by another process's probe since the loop above saw it
            return f"{above} is a file, not a folder"
        for new in reversed(missing):
            try:
                new.mkdir()
            except OSError as exc:
                problem = f"cannot create the folder {new} ({exc.strerror or exc})"
                if isinstance(exc, (FileExistsError, FileNotFoundError)):  # maybe another process's probe's doing
                    raise _ProbeRaced(problem) from None
                return problem
            created.append(new)
        try:
            handle, probe = tempfile.mkstemp(dir=target, prefix=".genkit-probe-")
        except OSError as exc:
            problem = f"cannot write a file in {target} ({exc.strerror or exc})"
            if isinstance(exc, FileNotFoundError):
                raise _ProbeRaced(problem) from None
            return problem
        os.close(handle)
        os.unlink(probe)
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
