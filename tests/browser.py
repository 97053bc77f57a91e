"""A real headless browser for the tests that look at a page: Debian's Chromium driven by Playwright.

The tests skip, saying why, where Chromium or Playwright is missing (``.ci/run`` installs both). The browser
starts with a fresh profile and no background traffic of its own, and every request a page makes to a host
other than 127.0.0.1 is refused and recorded in :attr:`Browser.outside`, so a test can assert that a page works
offline and fetches nothing from the internet.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's Chromium, or a skip naming how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    return path


def require_browser() -> None:
    """Skip now, before any costly set-up, where Chromium or Playwright is missing."""
    chromium_path()
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright; .ci/run does)"
    )


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now, for a page to be served on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """One browser context of a given window size; :meth:`page` opens pages in it."""

    def __init__(self, context):
        self.context = context
        self.outside: list[str] = []
        context.route("**/*", self._only_local)

    def _only_local(self, route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def page(self):
        return self.context.new_page()


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """A headless Chromium window ``width`` × ``height`` CSS pixels with a fresh profile, closed afterwards."""
    require_browser()
    from playwright import sync_api

    with tempfile.TemporaryDirectory(prefix="genkit-chromium-") as profile, sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield Browser(context)
        finally:
            context.close()
