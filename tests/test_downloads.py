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

from genkit.downloads import CACHE_ENV, cache_dir, drop_hint, fetch, part_path
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


# --- downloads end ----------------------------------------------------------------------------------------------


def test_a_transfer_slower_than_the_minimum_rate_gives_up_in_one_line_keeping_what_arrived(served, tmp_path):
    server, url = served
    server.block, server.delay = 1000, 0.05  # about 20 KB a second
    target = tmp_path / "file.bin"
    with pytest.raises(DataError) as info:
        fetch(url, target, md5=MD5, retries=0, timeout=0.3, min_rate=100_000)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{url}: the transfer broke off once, last after ")
    assert "(slower than 100000 bytes a second for 0.3" in message
    assert not target.exists() and 0 < part_path(target).stat().st_size < len(PAYLOAD)


def test_a_server_that_falls_silent_is_given_up_after_the_timeout(served, tmp_path):
    server, url = served
    server.stall_after = 1000
    started = time.monotonic()
    with pytest.raises(DataError, match=r"broke off 2 times, last after 2000 bytes \(timed out\)"):
        fetch(url, tmp_path / "file.bin", md5=MD5, retries=1, timeout=0.3)
    assert time.monotonic() - started < 10
    assert server.gets("/data/file.bin") == [None, "bytes=1000-"]  # the second try resumed, and stalled again


def test_a_server_announcing_another_size_than_the_known_one_is_refused_before_its_body(served, tmp_path):
    _, url = served
    with pytest.raises(DataError, match=rf"^{url}: the server's file is {len(PAYLOAD)} bytes, expected 1000$"):
        fetch(url, tmp_path / "file.bin", md5=MD5, size=1000)
    assert not part_path(tmp_path / "file.bin").exists()


def test_a_body_of_unknown_length_is_stopped_at_the_known_size_and_deleted(served, tmp_path):
    server, url = served
    server.lengths = False
    target = tmp_path / "file.bin"
    with pytest.raises(DataError, match=rf"^{url}: the server sent more than the 1000 bytes of the file; stopped"):
        fetch(url, target, md5="", size=1000)
    assert not target.exists() and not part_path(target).exists()


def test_a_body_of_unknown_length_without_a_checksum_is_never_kept(served, tmp_path):
    server, url = served
    server.lengths = False
    target = tmp_path / "file.bin"
    with pytest.raises(DataError) as info:
        fetch(url, target, md5="")
    assert str(info.value) == (
        f"{url}: the server sent {len(PAYLOAD)} bytes without saying how many to expect, and no checksum (md5) is set "
        "to show the file is complete; deleted it: set its md5 to download it"
    )
    assert not target.exists() and not part_path(target).exists()


def test_a_body_of_unknown_length_with_its_checksum_is_kept(served, tmp_path):
    server, url = served
    server.lengths = False
    assert fetch(url, tmp_path / "file.bin", md5=MD5).read_bytes() == PAYLOAD


def test_a_finished_download_says_it_is_genkits_own_and_how_to_drop_it(served, tmp_path):
    _, url = served
    target = fetch(url, tmp_path / "file.bin", md5=MD5)
    assert drop_hint(target) == f"; it is genkit's own download of {url}: delete {target} and genkit downloads it again"
    (tmp_path / "mine.bin").write_bytes(PAYLOAD)
    assert drop_hint(tmp_path / "mine.bin") == ""
