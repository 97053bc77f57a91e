"""``genkit demo`` in a real browser: the page ``genkit demo MODEL`` serves on 127.0.0.1, opened in headless
Chromium, shows the tabs the model's capabilities allow, and its buttons draw what the commands draw.

Skipped, with the reason, where Gradio, Playwright or Chromium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from browser import browser, free_port, require_browser
from flowpp_helpers import converted_tiny_model
from PIL import Image
from pretrained_fixtures import TINY_VDVAE, perturbed

from genkit.cli.demo import interpolation_picture, reconstruction_picture, sample_picture

pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[demo]'; .ci/run does)")

WAIT_MS = 60_000  # a busy 2-core machine may take this long to draw


@pytest.fixture(scope="module")
def vdvae_dir(tmp_path_factory):
    """A saved tiny VDVAE (5 latent layers, 8×8 grey images)."""
    from genkit.models import build_model
    from genkit.pretrained import save_pretrained
    from genkit.recipe import load_recipe

    folder = tmp_path_factory.mktemp("demo")
    (folder / "tiny.toml").write_text(TINY_VDVAE)
    torch.manual_seed(0)
    return save_pretrained(perturbed(build_model(load_recipe(folder / "tiny.toml"))).eval(), folder / "tiny-vdvae")


@pytest.fixture(scope="module")
def served(vdvae_dir):
    """``genkit demo DIR --port P`` running in its own process: the page's URL."""
    require_browser()
    port = free_port()
    # the same number of threads as this process, so that its draws are bit for bit the ones computed here
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    server = subprocess.Popen(
        [sys.executable, "-m", "genkit", "demo", str(vdvae_dir), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"genkit demo stopped (exit {server.returncode}): {server.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"genkit demo did not answer at {url} within {seconds} s")


@pytest.fixture(scope="module")
def window():
    with browser(1280, 900) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def vdvae_page(served, window):
    page = window.page()
    page.goto(served)
    page.get_by_role("button", name="Sample").wait_for(timeout=WAIT_MS)
    return page


def shown_picture(page, element_id: str, previous: str | None = None) -> tuple[np.ndarray, str]:
    """The picture the output ``element_id`` shows once it differs from ``previous`` (its address)."""
    image = page.locator(f"#{element_id} img")
    image.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "([id, previous]) => { const i = document.querySelector(`#${id} img`); "
        "return i && i.complete && i.naturalWidth > 0 && i.src !== previous; }",
        arg=[element_id, previous],
        timeout=WAIT_MS,
    )
    source = image.get_attribute("src")
    body = page.request.get(source).body()
    return np.asarray(Image.open(io.BytesIO(body))), source


def test_a_vdvae_page_has_the_sample_reconstruct_and_interpolate_tabs(vdvae_page):
    assert vdvae_page.get_by_role("tab").all_inner_texts() == ["Sample", "Reconstruct", "Interpolate"]


def test_a_click_draws_the_samples_genkit_sample_draws_and_a_new_seed_new_ones(vdvae_page, vdvae_dir):
    from genkit.hub import from_pretrained

    model = from_pretrained(vdvae_dir)
    page = vdvae_page
    page.get_by_role("button", name="Sample").click()
    first, source = shown_picture(page, "samples")
    np.testing.assert_array_equal(first, sample_picture(model, 16, 1.0, 0, None, "cpu"))

    page.get_by_label("seed").first.fill("1")
    page.get_by_role("button", name="Sample").click()
    second, _ = shown_picture(page, "samples", previous=source)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, sample_picture(model, 16, 1.0, 1, None, "cpu"))


def test_reconstruct_draws_the_upload_and_its_reconstructions(vdvae_page, vdvae_dir, tmp_path):
    from genkit.hub import from_pretrained

    upload = np.random.default_rng(3).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(upload).save(tmp_path / "digit.png")
    page = vdvae_page
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("input[type=file]").first.set_input_files(tmp_path / "digit.png")
    page.get_by_role("button", name="Reconstruct").click()
    row, _ = shown_picture(page, "reconstructions")
    rgb = np.repeat(upload[..., None], 3, axis=2)  # the page hands uploads over as RGB
    expected = reconstruction_picture(from_pretrained(vdvae_dir), rgb, 2, 0.1, 8, 0, "cpu")  # the tab's defaults
    np.testing.assert_array_equal(row, expected)


def test_a_flows_page_interpolates_between_two_uploads(window, tmp_path):
    from genkit.cli.demo_commands import import_gradio, serve

    flow = converted_tiny_model(torch.float32)
    rng = np.random.default_rng(4)
    uploads = [rng.integers(0, 256, flow.image_shape, dtype=np.uint8) for _ in range(2)]
    for i, upload in enumerate(uploads):
        Image.fromarray(upload).save(tmp_path / f"{i}.png")
    port = free_port()
    app = serve(import_gradio(), flow, "flowpp-tiny", "cpu", host="127.0.0.1", port=port, block=False)
    try:
        page = window.page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("tab", name="Interpolate").click()
        assert page.get_by_role("tab").all_inner_texts() == ["Sample", "Interpolate"]
        files = page.locator("input[type=file]")
        files.nth(0).set_input_files(tmp_path / "0.png")
        files.nth(1).set_input_files(tmp_path / "1.png")
        page.get_by_role("button", name="Interpolate").click()
        row, _ = shown_picture(page, "interpolation")
        np.testing.assert_array_equal(row, interpolation_picture(flow, *uploads, steps=8, seed=0, device="cpu"))
    finally:
        app.close()


def test_the_pages_fetch_nothing_from_outside_this_machine(window, vdvae_page):
    assert window.outside == []
