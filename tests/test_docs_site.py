"""The built documentation, read in a real browser: every page of ``mkdocs build --strict``, served on 127.0.0.1 and
opened in headless Chromium in a desktop (1280 px) and a phone-sized (390 px) window, shows all its pictures,
links only to pages and anchors that exist, fits the window (a wide table or code block scrolls inside its own
box, never the page) and fetches nothing from outside the site.

Skipped, with the reason, where mkdocs-material, Playwright or Chromium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from browser import browser, require_browser
from locations import ROOT

WINDOWS = {"desktop": (1280, 900), "phone": (390, 844)}

# What a page tells about itself once the theme's script has laid it out.
READ_PAGE = """() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const tooWide = [...document.body.querySelectorAll('*')]
        .filter(e => {
            const box = e.getBoundingClientRect();
            return box.right > width + 1 && box.width > 0 && box.height > 0
                && e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
        })
        .filter(e => !(e.parentElement && e.parentElement.closest('.md-typeset__scrollwrap, pre')))
        .map(e => `${e.tagName.toLowerCase()}.${e.classList[0] || ''}: ${(e.textContent || '').trim().slice(0, 60)}`);
    return {
        overflow: root.scrollWidth - width,
        tooWide: tooWide.slice(-3),
        brokenImages: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
        images: document.images.length,
        links: [...document.querySelectorAll('a[href]')].map(a => a.href),
        ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    };
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The documentation built with ``mkdocs build --strict`` and served on 127.0.0.1: ``(base URL, folder)``."""
    require_browser()
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


def page_urls(base: str, folder: Path) -> list[str]:
    """Every page the build wrote (``x/index.html`` is served as ``x/``), the 404 page aside."""
    pages = sorted(p.relative_to(folder) for p in folder.rglob("*.html") if p.name != "404.html")
    return [base + (str(p.parent) + "/" if p.name == "index.html" and str(p.parent) != "." else "") for p in pages]


@pytest.fixture(scope="module")
def readings(site):
    """``{window: {page URL: what the page tells}}`` plus the failed and outside requests of every visit."""
    base, folder = site
    urls = page_urls(base, folder)
    assert len(urls) >= 13, urls  # every page of the nav
    failed: list[str] = []
    with browser(*WINDOWS["desktop"]) as chromium:
        page = chromium.page()
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on(
            "requestfailed",
            lambda r: failed.append(f"{r.failure} {r.url}") if "ERR_ABORTED" not in (r.failure or "") else None,
        )
        found = {window: {} for window in WINDOWS}
        for url in urls:
            page.set_viewport_size(dict(zip(("width", "height"), WINDOWS["desktop"])))
            page.goto(url)
            for window, (width, height) in WINDOWS.items():  # the page lays itself out again at each size
                page.set_viewport_size({"width": width, "height": height})
                found[window][url] = page.evaluate(READ_PAGE)
        outside = list(chromium.outside)
    return {"pages": found, "failed": failed, "outside": outside, "base": base, "folder": folder}


def test_every_page_shows_every_picture(readings):
    broken = {
        url: reading["brokenImages"]
        for pages in readings["pages"].values()
        for url, reading in pages.items()
        if reading["brokenImages"]
    }
    assert not broken, broken
    assert not [f for f in readings["failed"] if f.split("?")[0].endswith((".png", ".svg", ".jpg"))], readings["failed"]
    pictured = [url for url, r in readings["pages"]["desktop"].items() if r["images"]]
    assert len(pictured) >= 5, pictured  # the three families, training and performance at least


def test_every_internal_link_reaches_an_existing_page_and_anchor(readings):
    base, folder = readings["base"], readings["folder"]
    pages = readings["pages"]["desktop"]
    broken = set()
    for url, reading in pages.items():
        for link in reading["links"]:
            if not link.startswith(base):
                continue
            target, anchor = urldefrag(link)
            if target in pages:
                if anchor and anchor not in pages[target]["ids"]:
                    broken.add(f"{url} → {link}: no element with id {anchor!r}")
            elif not (folder / urlsplit(target).path.lstrip("/")).is_file():
                broken.add(f"{url} → {link}: no such page or file")
    assert not broken, "\n".join(sorted(broken))
    assert not readings["failed"], readings["failed"]


@pytest.mark.parametrize("window", WINDOWS)
def test_no_page_is_wider_than_the_window(readings, window):
    # the page scrolling sideways, or (where the theme clips the page) elements reaching past its right edge
    wide = {
        url: f"scrolls {r['overflow']} px sideways; past the edge: {r['tooWide']}"
        for url, r in readings["pages"][window].items()
        if r["overflow"] > 0 or r["tooWide"]
    }
    assert not wide, "\n".join(f"{url}: {why}" for url, why in wide.items())


def test_the_site_fetches_nothing_from_outside(readings):
    assert readings["outside"] == []
