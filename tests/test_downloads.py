"""genkit.downloads.fetch against a real HTTP server on 127.0.0.1: once, verified, resumable, atomic, in one line."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from file_server import file_server  # noqa: F401

from genkit.downloads import CACHE_ENV, cache_dir, fetch, part_path
from genkit.errors import DataError

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes, every one known
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def served(file_server):
    file_server.files["/data/file.bin"] = PAYLOAD
    return file_server, file_server.url("/data/file.bin")


def test_the_first_call_downloads_and_verifies_and_later_calls_make_no_request(served, tmp_path):
    server, url = served
    target = tmp_path / "cache" / "file.bin"
    assert fetch(url, target, md5=MD5) == target
    assert target.read_bytes() == PAYLOAD
    assert not part_path(target).exists()
    before = len(server.requests)
    assert fetch(url, target, md5=MD5) == target
    assert len(server.requests) == before == 1


def test_a_wrong_checksum_deletes_the_download_and_names_the_url_and_both_checksums(served, tmp_path):
    server, url = served
    server.corrupt = True
    found = hashlib.md5(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]).hexdigest()
    target = tmp_path / "file.bin"
    with pytest.raises(DataError) as info:
        fetch(url, target, md5=MD5)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{url}: ") and f"MD5 is {found}, expected {MD5}" in message
    assert not target.exists() and not part_path(target).exists()


def test_a_transfer_cut_halfway_resumes_from_where_it_stopped(served, tmp_path):
    server, url = served
    server.cut = 1
    target = tmp_path / "file.bin"
    fetch(url, target, md5=MD5)
    assert target.read_bytes() == PAYLOAD
    assert server.gets("/data/file.bin") == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_a_transfer_that_keeps_breaking_keeps_its_part_file_and_the_next_call_resumes_it(served, tmp_path):
    server, url = served
    server.cut = 2
    target = tmp_path / "file.bin"
    with pytest.raises(DataError) as info:
        fetch(url, target, md5=MD5, retries=1)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{url}: the transfer broke off 2 times")
    assert not target.exists()
    kept = part_path(target).stat().st_size
    assert kept == len(PAYLOAD) // 2 + (len(PAYLOAD) - len(PAYLOAD) // 2) // 2  # half, then half of the rest
    fetch(url, target, md5=MD5)
    assert target.read_bytes() == PAYLOAD
    assert server.gets("/data/file.bin")[-1] == f"bytes={kept}-"


def test_a_server_that_ignores_range_sends_the_whole_file_and_it_is_written_from_the_start(served, tmp_path):
    server, url = served
    server.cut, server.ranges = 1, False
    target = tmp_path / "file.bin"
    fetch(url, target, md5=MD5)
    assert target.read_bytes() == PAYLOAD


def test_a_left_over_part_file_of_other_bytes_is_discarded_and_the_download_starts_over(served, tmp_path):
    server, url = served
    target = tmp_path / "file.bin"
    part_path(target).write_bytes(b"\0" * 1000)  # not the beginning of PAYLOAD
    fetch(url, target, md5=MD5)
    assert target.read_bytes() == PAYLOAD
    assert server.gets("/data/file.bin") == ["bytes=1000-", None]


def test_a_complete_part_file_is_verified_and_kept_without_downloading_it_again(served, tmp_path):
    server, url = served
    target = tmp_path / "file.bin"
    part_path(target).write_bytes(PAYLOAD)
    fetch(url, target, md5=MD5)
    assert target.read_bytes() == PAYLOAD
    assert server.gets("/data/file.bin") == [f"bytes={len(PAYLOAD)}-"]  # answered 416: nothing more to send


def test_a_server_that_is_down_is_one_line_naming_the_url_and_connection_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(DataError) as info:
        fetch(url, tmp_path / "file.bin", md5=MD5, hint="; or copy it by hand")
    assert str(info.value) == f"{url}: could not connect (Connection refused); or copy it by hand"
    assert not (tmp_path / "file.bin").exists() and not part_path(tmp_path / "file.bin").exists()


def test_an_http_error_status_is_one_line_naming_the_url_and_the_status(served, tmp_path):
    server, _ = served
    url = server.url("/data/missing.bin")
    with pytest.raises(DataError, match=r"^http://127\.0\.0\.1:\d+/data/missing\.bin: the server answered HTTP 404"):
        fetch(url, tmp_path / "file.bin", md5=MD5)


def test_without_a_checksum_the_complete_transfer_is_kept(served, tmp_path):
    _, url = served
    target = tmp_path / "file.bin"
    fetch(url, target, md5="")
    assert target.read_bytes() == PAYLOAD


def test_the_cache_is_genkit_cache_when_set_else_under_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    assert cache_dir() == tmp_path / "shared"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "genkit"


KILLED_FETCH = """
import sys
from genkit.downloads import fetch
fetch(sys.argv[1], sys.argv[2], md5=sys.argv[3])
"""


def test_a_process_killed_mid_download_leaves_no_file_a_later_run_takes_for_a_good_copy(served, tmp_path):
    server, url = served
    server.block, server.delay = 16384, 0.1  # 16 pieces over about 1.6 s
    target = tmp_path / "file.bin"
    process = subprocess.Popen([sys.executable, "-c", KILLED_FETCH, url, str(target), MD5], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (part_path(target).exists() and part_path(target).stat().st_size > 0):
        assert process.poll() is None and time.monotonic() < deadline, "the download did not start"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert not target.exists()
    kept = part_path(target).stat().st_size
    assert 0 < kept < len(PAYLOAD)
    server.delay = 0.0
    fetch(url, target, md5=MD5)  # the dead process's lock went with it; its bytes are resumed, then verified
    assert target.read_bytes() == PAYLOAD
    assert server.gets("/data/file.bin")[-1] == f"bytes={kept}-"
