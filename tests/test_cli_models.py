"""The model commands end to end on a converted reference checkpoint: convert, eval, sample, reconstruct, rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from locations import FIXTURES, ROOT
from PIL import Image

from genkit.cli import main

FIXTURE = FIXTURES / "vdvae-tiny-5bit"
RECIPE = str(ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    assert (
        main(["convert", "vdvae", str(FIXTURE / "reference-model-float64.th"), "--recipe", RECIPE, "--out", str(out)])
        == 0
    )
    return out


def test_eval_with_mean_latents_writes_the_fixture_keys_and_values(model_dir, tmp_path):
    out = tmp_path / "out.json"
    code = main(
        [
            "eval",
            str(model_dir),
            "--images",
            str(FIXTURE / "images_uint8.npy"),
            "--latents",
            "mean",
            "--dtype",
            "float64",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    got, expected = json.loads(out.read_text()), json.loads((FIXTURE / "expected.json").read_text())
    for key in ("distortion_nats_per_dim", "rate_nats_per_dim", "elbo_nats_per_dim", "kl_nats_per_layer"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=key)


def test_eval_of_images_prints_the_objective_and_its_parts_in_bits_per_dim(model_dir, capsys):
    images = str(FIXTURE / "images_uint8.npy")
    assert main(["eval", str(model_dir), "--images", images, "--latents", "mean", "--dtype", "float64"]) == 0
    expected = json.loads((FIXTURE / "expected.json").read_text())
    bits = {part: np.mean(expected[f"{part}_nats_per_dim"]) / np.log(2) for part in ("distortion", "rate")}
    out = capsys.readouterr().out
    assert "objective='negative ELBO'" in out
    assert f"(distortion {bits['distortion']:.4f} + rate {bits['rate']:.4f} bits/dim)" in out


def test_sample_writes_a_grid_of_n_images(model_dir, tmp_path):
    grid, npy = tmp_path / "grid.png", tmp_path / "s.npy"
    assert (
        main(
            [
                "sample",
                str(model_dir),
                "--n",
                "4",
                "--temperature",
                "0.9",
                "--seed",
                "0",
                "--out",
                str(grid),
                "--npy",
                str(npy),
            ]
        )
        == 0
    )
    assert np.load(npy).shape == (4, 16, 16, 3)
    assert Image.open(grid).size[0] > 16


def test_sample_accepts_one_temperature_per_layer_and_rejects_a_wrong_count(model_dir, tmp_path, capsys):
    per_layer = ",".join(["0.8"] * 8)
    assert (
        main(["sample", str(model_dir), "--n", "2", "--temperature", per_layer, "--out", str(tmp_path / "a.png")]) == 0
    )
    assert (
        main(["sample", str(model_dir), "--n", "2", "--temperature", "0.8,0.7", "--out", str(tmp_path / "b.png")]) == 2
    )
    assert "one temperature per latent layer (8)" in capsys.readouterr().err


def test_reconstruct_writes_one_row_per_image(model_dir, tmp_path):
    out = tmp_path / "rec.png"
    assert (
        main(
            [
                "reconstruct",
                str(model_dir),
                "--images",
                str(FIXTURE / "images_uint8.npy"),
                "--n",
                "2",
                "--keep",
                "0,4,8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    width, height = Image.open(out).size
    assert width > height  # 4 columns (original + 3), 2 rows


def test_reconstruct_keeps_1_2_4_and_then_every_layer_unless_told(model_dir, tmp_path, capsys):
    args = ["reconstruct", str(model_dir), "--images", str(FIXTURE / "images_uint8.npy"), "--n", "2"]
    assert main([*args, "--out", str(tmp_path / "rec.png")]) == 0
    assert "(original + k = 1,2,4,8)" in capsys.readouterr().out  # the fixture model has 8 latent layers


def test_rates_table_matches_the_fixture_layer_kl_in_bits_per_dim(model_dir, tmp_path):
    plot, table = tmp_path / "rates.png", tmp_path / "rates.json"
    args = [
        "rates",
        str(model_dir),
        "--images",
        str(FIXTURE / "images_uint8.npy"),
        "--latents",
        "mean",
        "--plot",
        str(plot),
        "--json",
        str(table),
    ]
    assert main(args) == 0
    expected = (
        np.mean(json.loads((FIXTURE / "expected.json").read_text())["kl_nats_per_layer"], axis=0)
        / (16 * 16 * 3)
        / np.log(2)
    )
    got = [row["bits_per_dim"] for row in json.loads(table.read_text())["layers"]]
    np.testing.assert_allclose(got, expected, rtol=1e-4)  # float32 weights
    assert plot.stat().st_size > 0


def test_convert_names_the_differing_keys(tmp_path, capsys):
    code = main(
        [
            "convert",
            "vdvae",
            str(FIXTURE / "reference-model-ema.th"),
            "--recipe",
            RECIPE,
            "--set",
            "model.zdim=4",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "decoder.dec_blocks.0.z_proj.weight: (32, 3, 1, 1) in the file, (32, 4, 1, 1) in the model" in err


def test_convert_infers_a_shorter_encoder_string_from_the_file(tmp_path, capsys):
    longer = "16x1,16d2,8x2,8d2,4x1,4d4,1x3"  # the file has 1x1: encoder blocks 8 and 9 are missing
    out = tmp_path / "m"
    code = main(
        [
            "convert",
            "vdvae",
            str(FIXTURE / "reference-model-ema.th"),
            "--recipe",
            RECIPE,
            "--set",
            f'model.enc_blocks="{longer}"',
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "encoder.enc_blocks.8.* (8 tensors), encoder.enc_blocks.9.* (8 tensors)" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["model"]["enc_blocks"] == "16x1,16d2,8x2,8d2,4x1,4d4,1x1"


def test_eval_rejects_images_of_the_wrong_shape(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 8, 8, 3), dtype=np.uint8))
    assert main(["eval", str(model_dir), "--images", str(bad)]) == 1
    assert "expected uint8 images of shape (N, 16, 16, 3)" in capsys.readouterr().err


def test_rate_plot_legend_shows_each_resolutions_bar_colour(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genkit.cli import latent_commands

    saved = {}

    def savefig(fig, path, *args, **kwargs):  # keeps the figure; the file only has to exist
        saved["fig"] = fig
        Path(path).write_bytes(b"")

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    table = [{"layer": 0, "resolution": 1, "bits_per_dim": 0.1}, {"layer": 1, "resolution": 4, "bits_per_dim": 0.2}]
    latent_commands.plot_rates(table, str(tmp_path / "rates.png"))
    ax = saved["fig"].axes[0]
    bar_colours = {p.get_facecolor() for p in ax.patches}
    legend_colours = {h.get_facecolor() for h in ax.get_legend().legend_handles}
    assert len(legend_colours) == 2 and legend_colours == bar_colours
