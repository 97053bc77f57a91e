"""``genkit encode``, ``decode`` and ``interpolate`` end to end on saved model directories of every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flowpp_helpers import converted_tiny_model, fixture_images, tiny_recipe
from locations import ROOT
from PIL import Image
from pretrained_fixtures import TINY_VDVAE, perturbed

from genkit.cli import main
from genkit.cli.model_options import generator_for
from genkit.latentfiles import load_latents
from genkit.latents import concatenate
from genkit.models import build_model
from genkit.pretrained import load_model_dir, save_pretrained
from genkit.recipe import load_recipe


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model directories of a tiny VDVAE, the fixture's Flow++ and a small PixelCNN++, and images for each."""
    out = tmp_path_factory.mktemp("latent-cli")
    (out / "vdvae.toml").write_text(TINY_VDVAE)
    torch.manual_seed(0)
    save_pretrained(perturbed(build_model(load_recipe(out / "vdvae.toml"))).eval(), out / "vdvae", card=False)
    flow = converted_tiny_model(torch.float32)
    flow.recipe = tiny_recipe()
    save_pretrained(flow, out / "flowpp", card=False)
    small = ["model.nr_resnet=1", "model.nr_filters=8"]
    save_pretrained(build_model(load_recipe(ROOT / "recipes" / "pixelcnnpp-digits.toml", small)), out / "pixelcnnpp")
    digits = torch.randint(0, 256, (5, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    np.save(out / "digits.npy", digits.numpy())
    np.save(out / "colour.npy", fixture_images()[:2].numpy())
    np.save(out / "colour-b.npy", fixture_images()[2:4].numpy())
    return out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_encode_then_decode_of_a_vdvae_draws_what_the_python_api_draws(models, tmp_path):
    latents, grid, npy = tmp_path / "z.safetensors", tmp_path / "grid.png", tmp_path / "images.npy"
    vdvae, digits = str(models / "vdvae"), str(models / "digits.npy")
    assert main(["encode", vdvae, "--images", digits, "--out", str(latents), "--batch-size", "2"]) == 0
    assert main(["decode", vdvae, str(latents), "--out", str(grid), "--npy", str(npy), "--seed", "4"]) == 0
    model = load_model_dir(models / "vdvae")
    batches = torch.from_numpy(np.load(digits)).split(2)
    encoded = concatenate([model.encode_latents(batch) for batch in batches])
    assert all(torch.equal(t, encoded.tensors[n]) for n, t in load_latents(model, latents).tensors.items())
    expected = model.decode_latents(encoded, generator=generator_for("cpu", 4))
    assert np.array_equal(np.load(npy), expected.numpy())
    scale = 64 // 8
    assert Image.open(grid).size == (scale * (3 * 9 + 1), scale * (2 * 9 + 1))  # 5 images, 3 a row


def test_a_flow_decodes_the_latents_genkit_encode_wrote_to_the_very_images(models, tmp_path, capsys):
    latents, npy = tmp_path / "z.safetensors", tmp_path / "images.npy"
    flow, images = str(models / "flowpp"), str(models / "colour.npy")
    assert main(["encode", flow, "--images", images, "--out", str(latents)]) == 0
    assert "(flow z, 1 tensor)" in capsys.readouterr().out
    assert main(["decode", flow, str(latents), "--out", str(tmp_path / "grid.png"), "--npy", str(npy)]) == 0
    assert np.array_equal(np.load(npy), np.load(images))


def test_interpolate_writes_a_row_per_pair_and_a_column_per_step_ends_included(models, tmp_path):
    grid, npy = tmp_path / "between.png", tmp_path / "between.npy"
    a, b = str(models / "colour.npy"), str(models / "colour-b.npy")
    code = main(["interpolate", str(models / "flowpp"), a, b, "--steps", "3", "--out", str(grid), "--npy", str(npy)])
    assert code == 0
    rows = np.load(npy).reshape(2, 3, 8, 8, 3)
    assert np.array_equal(rows[:, 0], np.load(a)) and np.array_equal(rows[:, -1], np.load(b))
    scale = 64 // 8  # small images are enlarged in the grid
    assert Image.open(grid).size == (scale * (3 * 9 + 1), scale * (2 * 9 + 1))


@pytest.mark.parametrize("command", ["encode", "decode", "interpolate"])
def test_a_model_without_latents_says_so_in_one_line(models, command, tmp_path, capsys):
    digits, model = str(models / "digits.npy"), str(models / "pixelcnnpp")
    argv = {
        "encode": ["encode", model, "--images", digits, "--out", str(tmp_path / "z.safetensors")],
        "decode": ["decode", model, str(tmp_path / "z.safetensors"), "--out", str(tmp_path / "g.png")],
        "interpolate": ["interpolate", model, digits, digits, "--out", str(tmp_path / "g.png")],
    }[command]
    assert main(argv) == 2
    assert f"genkit {command} {model} needs a model with latents to encode and decode, and a PixelCNNPP has none" in (
        one_line_error(capsys)
    )


def test_decoding_another_models_latents_names_the_file_and_tensor_in_one_line(models, tmp_path, capsys):
    latents = tmp_path / "flow.safetensors"
    assert main(["encode", str(models / "flowpp"), "--images", str(models / "colour.npy"), "--out", str(latents)]) == 0
    assert main(["decode", str(models / "vdvae"), str(latents), "--out", str(tmp_path / "g.png")]) == 1
    assert f"{latents}: holds 1 tensor (z), and the model's latents are 5 tensors" in one_line_error(capsys)


def test_decoding_in_another_dtype_than_the_encoding_is_refused_in_one_line(models, tmp_path, capsys):
    latents, vdvae = tmp_path / "z.safetensors", str(models / "vdvae")
    assert main(["encode", vdvae, "--images", str(models / "digits.npy"), "--out", str(latents)]) == 0
    capsys.readouterr()
    assert main(["decode", vdvae, str(latents), "--out", str(tmp_path / "g.png"), "--dtype", "float64"]) == 1
    assert "tensor 'layer_0' is float32 and the model runs in float64" in one_line_error(capsys)


def test_keep_applies_to_models_with_latent_layers_only(models, tmp_path, capsys):
    latents, flow = tmp_path / "z.safetensors", str(models / "flowpp")
    assert main(["encode", flow, "--images", str(models / "colour.npy"), "--out", str(latents)]) == 0
    capsys.readouterr()
    assert main(["decode", flow, str(latents), "--out", str(tmp_path / "g.png"), "--keep", "1"]) == 2
    assert "--keep needs a model with latent variables, and a FlowPP has none" in one_line_error(capsys)


def test_interpolate_needs_as_many_images_at_both_ends(models, tmp_path, capsys):
    colour = str(models / "colour.npy")
    one = tmp_path / "one.npy"
    np.save(one, np.load(colour)[:1])
    assert main(["interpolate", str(models / "flowpp"), colour, str(one), "--out", str(tmp_path / "g.png")]) == 1
    assert f"{one}: holds 1 image and {colour} 2" in one_line_error(capsys)
