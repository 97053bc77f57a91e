"""Fetching a file once, verified: a streamed HTTP download that resumes, checks its MD5 and appears atomically.

``fetch(url, target, md5=...)`` streams into ``target.part`` and renames it to ``target`` only once
its MD5 matches, so a file at ``target`` is always a verified copy: it is never fetched again, and
no request is made while it exists. Without a checksum, a file is kept only when its length was
known (the server's ``Content-Length``, or the ``size`` the caller knows) and all of it arrived: a
body of unknown length that ends may have been cut short, and nothing could tell. A server that
sends more than the known size is stopped there. A transfer that breaks off, or stalls (fewer than
:data:`MIN_RATE` bytes a second over :data:`STALL_SECONDS`), resumes where ``target.part`` ends (an
HTTP ``Range`` request), within the same call and in a later one. A lock file beside the target
(``target.lock``) lets one process per machine download while the others wait, then read the
finished file; a process that dies mid-download releases the lock with it and leaves only the
``.part`` file, which nothing mistakes for a good copy. Beside a finished download, ``target.url``
names where it came from, so that a reader of a damaged copy can say how to drop it
(:func:`drop_hint`).

Where downloads go when a recipe names no folder (:func:`cache_dir`, ``$GENKIT_CACHE``) and whether
anything may be downloaded at all (:func:`offline`, ``HF_HUB_OFFLINE=1``) are decided here only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from genkit.errors import DataError, first_line

CACHE_ENV = "GENKIT_CACHE"
CHUNK = 1 << 20
#: the slowest transfer kept going, in bytes a second, averaged over STALL_SECONDS; slower, it is broken off
MIN_RATE = 1024
#: how long a transfer may run below MIN_RATE, and the longest wait for the server's next byte, in seconds
STALL_SECONDS = 60.0


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


def source_path(target: Path) -> Path:
    """The note beside a finished download naming the URL it came from."""
    return target.with_name(target.name + ".url")


def drop_hint(path: str | Path) -> str:
    """For a file genkit downloaded (its note says so, or it lies in the genkit cache): that it is genkit's own
    download, and how to have it fetched again; ``""`` for any other file."""
    path = Path(path)
    try:
        url = source_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        url = ""
    if url:
        return f"; it is genkit's own download of {url}: delete {path} and genkit downloads it again"
    if path.resolve().is_relative_to(cache_dir().resolve()):
        return f"; it is in genkit's download cache: delete {path} and genkit downloads it again"
    return ""


def fetch(
    url: str,
    target: str | Path,
    *,
    md5: str | None,
    size: int | None = None,
    hint: str = "",
    progress: bool = True,
    retries: int = 3,
    timeout: float = STALL_SECONDS,
    min_rate: float = MIN_RATE,
) -> Path:
    """``target``, downloaded from ``url`` first unless it is already there; every failure is one ``DataError`` line.

    ``md5`` is the expected checksum (``None`` or ``""``: none is checked); ``size`` the file's length
    in bytes where the caller knows it (``None``: what the server says); ``hint`` is appended to every
    error (what the user can do instead); ``retries`` is how many times a transfer that breaks off or
    stalls is resumed before giving up; ``timeout`` bounds each wait for the server, and is how long a
    transfer may stay below ``min_rate`` bytes a second, in seconds.
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
            limits = _Limits(size, timeout, min_rate)
            _download(url, target, md5 or "", limits, hint=hint, progress=progress, retries=retries)
    finally:
        lock.release()
    return target


class _BrokenOff(Exception):
    """The connection closed, failed or stalled in the middle of the body; what arrived is kept in the ``.part``
    file."""


class _Limits(NamedTuple):
    size: int | None  # the file's length, where the caller knows it
    timeout: float  # seconds: the longest wait for a byte, and the window over which min_rate is measured
    min_rate: float  # bytes a second


def _download(url: str, target: Path, md5: str, limits: _Limits, *, hint: str, progress: bool, retries: int) -> None:
    part = part_path(target)
    breaks, started_over = 0, False
    if progress:
        print(f"downloading {url} to {target}", file=sys.stderr, flush=True)
    while True:
        resumed_from = part.stat().st_size if part.exists() else 0
        try:
            total = _transfer(url, part, resumed_from, limits, progress=progress, hint=hint)
        except _BrokenOff as exc:
            breaks += 1
            if breaks > retries:
                times = "once" if breaks == 1 else f"{breaks} times"
                raise DataError(
                    f"{url}: the transfer broke off {times}, last after {part.stat().st_size} bytes ({exc}); "
                    f"{part} keeps what arrived and the next attempt resumes from there{hint}"
                ) from None
            continue
        received = part.stat().st_size
        if not md5:
            known = limits.size if limits.size is not None else total
            if known is None or received != known:
                part.unlink()
                said = "without saying how many to expect" if known is None else f"of the {known} expected"
                raise DataError(
                    f"{url}: the server sent {received} bytes {said}, and no checksum (md5) is set to show the file "
                    f"is complete; deleted it: set its md5 to download it{hint}"
                )
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
        source_path(target).write_text(url + "\n")
        os.replace(part, target)
        return


def _transfer(url: str, part: Path, start: int, limits: _Limits, *, progress: bool, hint: str) -> int | None:
    """Append the rest of ``url`` from byte ``start`` to ``part`` (all of it when the server ignores ``Range``);
    return the whole file's length where the server said it."""
    from genkit.version import __version__

    headers = {"User-Agent": f"genkit/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:  # nothing after byte `start`: the part file already holds the whole file
            whole = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") if exc.headers else "")
            return int(whole.group(1)) if whole else None
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
        total = _whole_length(response, offset, expected)
        if limits.size is not None and total is not None and total != limits.size:
            raise DataError(f"{url}: the server's file is {total} bytes, expected {limits.size}{hint}")
        room = None if limits.size is None else limits.size - offset  # what may still arrive
        received = 0
        with (
            part.open("r+b" if offset else "wb") as fh,
            tqdm(
                total=total,
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
            window_start, window_received, overflow = time.monotonic(), 0, False
            try:
                while block := response.read1(CHUNK):  # what has arrived, so progress and kept bytes keep up
                    overflow = room is not None and received + len(block) > room
                    if overflow:
                        break
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
                    now = time.monotonic()
                    if now - window_start >= limits.timeout:
                        if received - window_received < limits.min_rate * (now - window_start):
                            raise _BrokenOff(
                                f"slower than {limits.min_rate:g} bytes a second for {now - window_start:.3g} s"
                            )
                        window_start, window_received = now, received
            except (OSError, http.client.HTTPException) as exc:
                raise _BrokenOff(_reason(exc)) from None
    if overflow:
        part.unlink()
        raise DataError(
            f"{url}: the server sent more than the {limits.size} bytes of the file; stopped it and deleted what "
            f"arrived{hint}"
        )
    if expected is not None and received < expected:
        raise _BrokenOff(f"the connection closed after {received} of {expected} bytes")
    return total


def _whole_length(response, offset: int, expected: int | None) -> int | None:
    """The whole file's length as the server gave it: ``Content-Range: bytes S-E/TOTAL`` of a partial answer, else
    where the body ends."""
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if response.status == 206 and match:
        return int(match.group(1))
    return None if expected is None else offset + expected


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
