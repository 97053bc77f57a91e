"""A small, real HTTP file server on 127.0.0.1 for download tests, with ways to misbehave on purpose.

``FileServer.files`` maps a URL path to the bytes served there. ``GET`` honours ``Range: bytes=S-[E]``
(``206`` with ``Content-Range``, ``416`` past the end) unless ``ranges`` is false; every answer sets
``Content-Length``. Misbehaviour, set on the server between requests:

* ``cut``: the next ``cut`` answers send half their body, then close the connection;
* ``corrupt``: every answer sends other bytes of the right length (the first byte flipped);
* ``delay``: seconds to sleep after each ``block``-byte piece of a body (a slow transfer);
* ``stall_after``: send that many bytes of a body, then nothing more, holding the connection open;
* ``lengths``: false sends no ``Content-Length``; the body then ends where the connection closes.

``requests`` records every request as ``(method, path, Range header or None)``.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest


class FileServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.cut = 0
        self.corrupt = False
        self.ranges = True
        self.delay = 0.0
        self.block = 1 << 16
        self.stall_after: int | None = None
        self.lengths = True
        self.stopped = threading.Event()  # ends the wait of a stalled answer
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def gets(self, path: str) -> list[str | None]:
        """The ``Range`` header (or ``None``) of every ``GET`` of ``path`` so far."""
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]

    def start(self) -> FileServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def _handler_for(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            path = urlsplit(self.path).path
            wanted = self.headers.get("Range")
            with server.lock:
                server.requests.append((self.command, path, wanted))
                cut = server.cut > 0
                server.cut -= cut
            content = server.files.get(path)
            if content is None:
                return self._answer(404, b"not found")
            if server.corrupt:
                content = bytes([content[0] ^ 0xFF]) + content[1:]
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "") if server.ranges else None
            if match is None:
                return self._answer(200, content, cut=cut)
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(content) - 1, len(content) - 1)
            if start >= len(content):
                return self._answer(416, b"", {"Content-Range": f"bytes */{len(content)}"})
            headers = {"Content-Range": f"bytes {start}-{end}/{len(content)}"}
            return self._answer(206, content[start : end + 1], headers, cut=cut)

        do_HEAD = do_GET

        def _answer(self, status: int, body: bytes, headers: dict | None = None, *, cut: bool = False):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/octet-stream")
            if server.lengths:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "HEAD":
                return
            sent = body[: len(body) // 2] if cut else body
            if server.stall_after is not None:
                sent = sent[: server.stall_after]
            try:
                for start in range(0, len(sent), server.block):
                    self.wfile.write(sent[start : start + server.block])
                    self.wfile.flush()
                    if server.delay:
                        time.sleep(server.delay)
                if server.stall_after is not None:
                    server.stopped.wait(60)  # silent, the connection open, until the test ends
            except (BrokenPipeError, ConnectionResetError):  # the client went away (a test killed it)
                self.close_connection = True
            if cut or not server.lengths:
                self.close_connection = True

    return Handler


@pytest.fixture
def file_server(monkeypatch):
    """A file server on 127.0.0.1 for one test; requests to it bypass any proxy the environment names."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = FileServer().start()
    yield server
    server.stop()
