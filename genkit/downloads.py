"""Fetching a file once, verified: a streamed HTTP download that resumes, checks its MD5 and appears atomically.

``fetch(url, target, md5=...)`` streams into ``target.part`` and renames it to ``target`` only once
its MD5 matches, so a file at ``target`` is always a verified copy: it is never fetched again, and
no request is made while it exists. A transfer that breaks off resumes where ``target.part`` ends
(an HTTP ``Range`` request), within the same call and in a later one. A lock file beside the
target (``target.lock``) lets one process per machine download while the others wait, then read
the finished file; a process that dies mid-download releases the lock with it and leaves only the
``.part`` file, which nothing mistakes for a good copy.

Where downloads go when a recipe names no folder (:func:`cache_dir`, ``$GENKIT_CACHE``) and whether
anything may be downloaded at all (:func:`offline`, ``HF_HUB_OFFLINE=1``) are decided here only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from genkit.errors import DataError, first_line

CACHE_ENV = "GENKIT_CACHE"
CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$GENKIT_CACHE`` if set, else ``~/.cache/genkit``: where data sets go when ``data.root`` is empty."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "genkit"


def offline() -> bool:
    """Whether the Hugging Face offline switch (``HF_HUB_OFFLINE=1``) is on; then genkit downloads nothing either."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def md5sum(path: Path, chunk: int = 4 * CHUNK) -> str:
    digest = hashlib.md5()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def part_path(target: Path) -> Path:
    """Where the bytes of an unfinished download of ``target`` accumulate."""
    return target.with_name(target.name + ".part")


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


def fetch(
    url: str,
    target: str | Path,
    *,
    md5: str | None,
    hint: str = "",
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """``target``, downloaded from ``url`` first unless it is already there; every failure is one ``DataError`` line.

    ``md5`` is the expected checksum (``None`` or ``""``: none is checked); ``hint`` is appended to
    every error (what the user can do instead); ``retries`` is how many times a transfer that breaks
    off is resumed before giving up; ``timeout`` bounds each wait for the server, in seconds.
    """
    target = Path(target)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock, Timeout

        lock = FileLock(lock_path(target))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                print(f"waiting for another process to finish downloading {target}", file=sys.stderr, flush=True)
            lock.acquire()
    except OSError as exc:
        raise DataError(
            f"{target.parent}: cannot write the download of {url} there ({exc.strerror or exc}); "
            f"choose a writable folder with data.root or {CACHE_ENV}{hint}"
        ) from None
    try:
        if not target.is_file():  # another process may have finished it while this one waited
            _download(url, target, md5 or "", hint=hint, progress=progress, retries=retries, timeout=timeout)
    finally:
        lock.release()
    return target


class _BrokenOff(Exception):
    """The connection closed or failed in the middle of the body; what arrived is kept in the ``.part`` file."""


def _download(url: str, target: Path, md5: str, *, hint: str, progress: bool, retries: int, timeout: float) -> None:
    part = part_path(target)
    breaks, started_over = 0, False
    if progress:
        print(f"downloading {url} to {target}", file=sys.stderr, flush=True)
    while True:
        resumed_from = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, resumed_from, progress=progress, timeout=timeout, hint=hint)
        except _BrokenOff as exc:
            breaks += 1
            if breaks > retries:
                raise DataError(
                    f"{url}: the transfer broke off {breaks} times, last after {part.stat().st_size} bytes ({exc}); "
                    f"{part} keeps what arrived and the next attempt resumes from there{hint}"
                ) from None
            continue
        found = md5sum(part) if md5 else ""
        if found != md5:
            part.unlink()
            if resumed_from and not started_over:
                started_over = True  # the kept bytes may belong to an older file at this URL: once more from zero
                continue
            raise DataError(
                f"{url}: the downloaded file's MD5 is {found}, expected {md5}; deleted it "
                f"(the server sent something other than the expected file){hint}"
            )
        with part.open("rb+") as fh:
            os.fsync(fh.fileno())  # the bytes are on disk before the name says the file is complete
        os.replace(part, target)
        return


def _transfer(url: str, part: Path, start: int, *, progress: bool, timeout: float, hint: str) -> None:
    """Append the rest of ``url`` from byte ``start`` to ``part`` (all of it when the server ignores ``Range``)."""
    from genkit.version import __version__

    headers = {"User-Agent": f"genkit/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:  # nothing after byte `start`: the part file already holds the whole file
            return
        raise DataError(f"{url}: the server answered HTTP {exc.code} ({exc.reason}){hint}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"{url}: could not connect ({_reason(exc.reason)}){hint}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(f"{url}: could not connect ({_reason(exc)}){hint}") from None
    from tqdm.auto import tqdm

    with response:
        offset = _content_offset(response, start)
        if offset is None:
            raise DataError(
                f"{url}: the server answered a request for bytes {start}- with the range "
                f"{response.headers.get('Content-Range')!r}{hint}"
            )
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with (
            part.open("r+b" if offset else "wb") as fh,
            tqdm(
                total=None if expected is None else offset + expected,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=None if progress else True,  # None: drawn only on a terminal
                leave=False,
            ) as bar,
        ):
            fh.seek(offset)
            fh.truncate()
            try:
                while block := response.read1(CHUNK):  # what has arrived, so progress and kept bytes keep up
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _BrokenOff(_reason(exc)) from None
    if expected is not None and received < expected:
        raise _BrokenOff(f"the connection closed after {received} of {expected} bytes")


def _content_offset(response, start: int) -> int | None:
    """Where the body starts in the file: ``start`` for a partial answer to ``Range``, 0 for the whole file."""
    if response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return start if match and int(match.group(1)) == start else None


def _reason(reason: object) -> str:
    """An OS error's own words ("Connection refused"), else the first line of what went wrong."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return first_line(reason if isinstance(reason, BaseException) else str(reason)) or type(reason).__name__
