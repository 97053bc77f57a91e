"""``genkit demo`` without a browser: which tabs a model gets, and that each tab draws what the matching command
draws. The page itself, in a real browser: ``tests/test_demo_page.py``."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import torch
from browser import free_port
from family_plugins import MaskedAR, MaskedARSettings, UniformFlow, UniformFlowSettings
from flowpp_helpers import converted_tiny_model
from PIL import Image
from pretrained_fixtures import tiny_dir, tiny_model, tiny_recipe  # noqa: F401

from genkit.cli import main
from genkit.cli.demo import (
    interpolation_picture,
    model_image,
    reconstruction_picture,
    sample_picture,
    tabs,
)
from genkit.errors import ConfigError


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_vdvae_gets_sampling_reconstruction_and_interpolation(tiny_model):
    assert tabs(tiny_model) == ["Sample", "Reconstruct", "Interpolate"]


def test_a_model_without_latents_gets_sampling_alone():
    assert tabs(MaskedAR(MaskedARSettings(image_size=4, width=8, layers=1))) == ["Sample"]


def test_a_flow_that_encodes_its_latents_gets_sampling_and_interpolation():
    assert tabs(converted_tiny_model(torch.float32)) == ["Sample", "Interpolate"]


def test_a_flow_without_latents_in_and_out_gets_sampling_alone():
    assert tabs(UniformFlow(UniformFlowSettings(image_size=4, width=8))) == ["Sample"]


def test_the_sample_tab_draws_the_grid_genkit_sample_writes(tiny_dir, tmp_path):
    from genkit.hub import from_pretrained

    out = tmp_path / "grid.png"
    assert main(["sample", str(tiny_dir), "--n", "9", "--seed", "3", "--temperature", "0.8", "--out", str(out)]) == 0
    shown = sample_picture(from_pretrained(tiny_dir), 9, 0.8, 3, None, "cpu")
    np.testing.assert_array_equal(shown, np.asarray(Image.open(out)))


def test_the_sample_tab_refuses_a_temperature_per_layer_of_the_wrong_length(tiny_model):
    with pytest.raises(ConfigError, match="one temperature per latent layer"):
        sample_picture(tiny_model, 4, [1.0, 0.5], 0, None, "cpu")


def test_an_upload_becomes_the_models_image_shrunk_and_in_its_channels(tiny_model):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L").resize((8, 8), Image.Resampling.LANCZOS))
    image = model_image(rgb, tiny_model, "Reconstruct")
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(image[0, ..., 0].numpy(), expected)


def test_nothing_uploaded_is_one_line_asking_for_an_image(tiny_model):
    with pytest.raises(ConfigError, match="^Reconstruct: upload an image first$"):
        model_image(None, tiny_model, "Reconstruct")


def test_a_reconstruction_row_is_the_upload_then_draws_that_keep_its_first_layers(tiny_model):
    upload = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    row = reconstruction_picture(tiny_model, upload, keep=2, temperature=1.0, draws=3, seed=0, device="cpu")
    tiles = tiles_of(row, size=8, columns=4)
    image = model_image(upload, tiny_model, "Reconstruct")
    np.testing.assert_array_equal(tiles[0], image[0, ..., 0].numpy())
    again = reconstruction_picture(tiny_model, upload, keep=2, temperature=1.0, draws=3, seed=0, device="cpu")
    other = reconstruction_picture(tiny_model, upload, keep=2, temperature=1.0, draws=3, seed=1, device="cpu")
    np.testing.assert_array_equal(row, again)
    assert not np.array_equal(row, other)
    assert len({t.tobytes() for t in tiles[1:]}) == 3  # three draws of the layers below the second


def test_keeping_more_layers_than_the_model_has_is_refused(tiny_model):
    with pytest.raises(ConfigError, match="expected 0 to 5 latent layers, found 6"):
        reconstruction_picture(tiny_model, np.zeros((8, 8, 3), np.uint8), 6, 0.1, 2, 0, "cpu")


def test_a_flows_interpolation_starts_and_ends_at_the_two_uploads():
    flow = converted_tiny_model(torch.float32)
    h, w, c = flow.image_shape
    rng = np.random.default_rng(2)
    first, second = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2))
    row = interpolation_picture(flow, first, second, steps=5, seed=0, device="cpu")
    tiles = tiles_of(row, size=h, columns=5)
    assert len(tiles) == 5
    ends = (model_image(first, flow, "first")[0].numpy(), model_image(second, flow, "second")[0].numpy())
    np.testing.assert_array_equal(tiles[0].reshape(h, w, c), ends[0])  # a flow's decode(encode(x)) is x
    np.testing.assert_array_equal(tiles[-1].reshape(h, w, c), ends[1])
    assert not np.array_equal(tiles[2], tiles[0]) and not np.array_equal(tiles[2], tiles[-1])


def tiles_of(grid: np.ndarray, size: int, columns: int) -> list[np.ndarray]:
    """The images of a one-row grid the page draws: tiles of ``size`` pixels with 1-pixel padding, all enlarged."""
    scale = max(1, 64 // size)
    small = grid[::scale, ::scale]  # one pixel per image pixel again
    return [small[1 : 1 + size, 1 + i * (size + 1) : 1 + i * (size + 1) + size] for i in range(columns)]


def test_without_gradio_the_command_says_how_to_install_it(tiny_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["demo", str(tiny_dir), "--port", str(free_port())]) == 2
    assert one_line_error(capsys) == (
        "genkit: error: genkit demo needs Gradio, which is not installed: pip install 'genkit-torch[demo]'"
    )


def test_a_port_already_taken_is_one_line_before_anything_loads(tiny_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", str(tiny_dir), "--port", str(port)]) == 2
    line = one_line_error(capsys)
    assert (
        line.startswith(f"genkit: error: --host 127.0.0.1 --port {port}: cannot serve there (")
        and "another --port" in line
    )
