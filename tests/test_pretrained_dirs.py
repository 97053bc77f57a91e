"""Model directories on disk: what they hold, that they load back exactly, and that loading is strict and
pickle-free."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from pretrained_fixtures import elbo, rewrite_weights, tensor_digests, tiny_dir, tiny_model, tiny_recipe  # noqa: F401
from safetensors.torch import load_file

from genkit.errors import CheckpointError, ConfigError, GenkitError, PluginError
from genkit.hub import from_pretrained
from genkit.models import build_model
from genkit.pretrained import load_model_dir, save_pretrained


def test_a_model_directory_holds_the_resolved_recipe_with_provenance_the_weights_and_a_card(tiny_dir, tiny_model):
    config = json.loads((tiny_dir / "config.json").read_text())
    from genkit.version import __version__

    assert config["genkit"] == {"version": __version__}
    assert config["model"]["name"] == "vdvae" and config["model"]["width"] == 16 and config["data"]["name"] == "digits"
    plugins = {(p["kind"], p["name"]): (p["provider"], p["version"]) for p in config["plugins"]}
    assert plugins[("model", "vdvae")] == ("genkit-torch", __version__)
    assert ("likelihood", "dmol") in plugins and ("block", "bottleneck") in plugins
    weights = load_file(str(tiny_dir / "model.safetensors"))
    assert set(weights) == set(tiny_model.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in tiny_model.state_dict().items())
    assert (tiny_dir / "README.md").read_text().startswith("---\n")


def test_a_model_keeps_the_recipe_it_was_built_from_and_one_built_by_hand_has_none(tiny_recipe, tmp_path):
    assert build_model(tiny_recipe, "meta").recipe is tiny_recipe
    by_hand = tiny_recipe.model.build("model")  # the factory alone, as a script might call it
    assert by_hand.recipe is None
    with pytest.raises(GenkitError, match=r"^save_pretrained needs the model.s recipe: .* or pass recipe="):
        save_pretrained(by_hand, tmp_path / "by-hand")
    assert save_pretrained(by_hand, tmp_path / "by-hand", recipe=tiny_recipe).is_dir()


def test_from_pretrained_on_a_directory_gives_identical_weights_and_elbo_in_eval_mode(tiny_dir, tiny_model):
    loaded = from_pretrained(tiny_dir)
    assert not loaded.training
    assert tensor_digests(loaded) == tensor_digests(tiny_model)
    assert elbo(loaded) == elbo(tiny_model)


def test_from_pretrained_casts_to_the_requested_dtype(tiny_dir, tiny_model):
    loaded = from_pretrained(str(tiny_dir), dtype=torch.float64, device="cpu")
    assert {p.dtype for p in loaded.parameters()} == {torch.float64}
    # float64 scoring of float32 weights agrees with float32 scoring to float32 precision
    assert elbo(loaded) == pytest.approx(elbo(tiny_model), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_from_pretrained_puts_the_model_on_the_requested_device(tiny_dir):
    loaded = from_pretrained(tiny_dir, device="cuda")
    assert {p.device.type for p in loaded.parameters()} == {"cuda"}


def test_a_revision_is_refused_for_a_local_directory(tiny_dir):
    with pytest.raises(ConfigError, match="a revision .* applies to Hub repos"):
        from_pretrained(tiny_dir, revision="main")


def test_a_missing_tensor_fails_naming_it(tiny_dir, tiny_model):
    tensors = dict(tiny_model.state_dict())
    del tensors["decoder.gain"]
    rewrite_weights(tiny_dir, tensors)
    with pytest.raises(CheckpointError, match=r"missing tensor 'decoder.gain'$"):
        load_model_dir(tiny_dir)


def test_an_unexpected_tensor_fails_naming_it(tiny_dir, tiny_model):
    rewrite_weights(tiny_dir, {**tiny_model.state_dict(), "decoder.extra": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'decoder.extra'$"):
        load_model_dir(tiny_dir)


def test_a_mis_shaped_tensor_fails_naming_it_and_both_shapes(tiny_dir, tiny_model):
    rewrite_weights(tiny_dir, {**tiny_model.state_dict(), "decoder.gain": torch.ones(1, 17, 1, 1)})
    with pytest.raises(
        CheckpointError, match=r"tensor 'decoder.gain' has shape \(1, 17, 1, 1\), the model expects \(1, 16, 1, 1\)"
    ):
        load_model_dir(tiny_dir)


def test_a_model_needing_an_uninstalled_plugin_fails_naming_the_plugin_and_its_distribution(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    config["model"]["block"] = {"name": "fancy-block", "provider": "genkit-fancy"}
    config["plugins"].append({"kind": "block", "name": "fancy-block", "provider": "genkit-fancy", "version": "1.2.0"})
    (tiny_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(PluginError) as err:  # not damage: the same exit status as a recipe naming it
        from_pretrained(tiny_dir)
    assert "block plugin 'fancy-block'" in str(err.value) and "'genkit-fancy' 1.2.0" in str(err.value)
    assert "pip install genkit-fancy" in str(err.value)


def test_a_recipe_naming_an_uninstalled_provider_outside_the_provenance_list_still_names_it(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    config["model"]["block"] = {"name": "fancy-block", "provider": "genkit-fancy"}
    (tiny_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PluginError, match="'fancy-block' is provided by the distribution 'genkit-fancy', which is not installed"
    ):
        from_pretrained(tiny_dir)


def test_a_truncated_weights_file_fails_with_one_line(tiny_dir):
    data = (tiny_dir / "model.safetensors").read_bytes()
    (tiny_dir / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_model_dir(tiny_dir)
    assert "model.safetensors: its sha256 differs" in str(err.value) and "altered or truncated" in str(err.value)
    assert "\n" not in str(err.value)


def test_an_altered_weight_is_caught_even_though_the_file_still_parses(tiny_dir):
    data = bytearray((tiny_dir / "model.safetensors").read_bytes())
    data[-3] ^= 0x40  # one bit of the last tensor's data: still a valid safetensors file
    (tiny_dir / "model.safetensors").write_bytes(bytes(data))
    load_file(str(tiny_dir / "model.safetensors"))  # parses fine
    with pytest.raises(CheckpointError, match="sha256 differs from the one recorded in config.json"):
        load_model_dir(tiny_dir)


def test_a_truncated_file_without_a_recorded_digest_fails_in_the_safetensors_reader_with_one_line(tiny_dir):
    config = json.loads((tiny_dir / "config.json").read_text())
    del config["weights_sha256"]
    (tiny_dir / "config.json").write_text(json.dumps(config))
    data = (tiny_dir / "model.safetensors").read_bytes()
    (tiny_dir / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(
        CheckpointError, match=r"not a readable safetensors file \(.+\); it may be truncated or altered$"
    ):
        load_model_dir(tiny_dir)


def test_a_truncated_config_fails_with_one_line(tiny_dir):
    text = (tiny_dir / "config.json").read_text()
    (tiny_dir / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=r"config.json: not valid JSON .*corrupt or truncated$"):
        load_model_dir(tiny_dir)


class _Tripwire:
    """Unpickling this creates a file: the test proves no pickle is ever read."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickled_weights_are_never_read(tiny_dir, tmp_path):
    tripwire = tmp_path / "unpickled"
    (tiny_dir / "model.safetensors").unlink()
    for name in ("pytorch_model.bin", "model.pt"):
        (tiny_dir / name).write_bytes(pickle.dumps(_Tripwire(tripwire)))
    with pytest.raises(CheckpointError, match="model.safetensors: weights file not found"):
        from_pretrained(tiny_dir)
    assert not tripwire.exists()


def test_a_path_that_is_a_file_is_refused(tiny_dir):
    with pytest.raises(
        CheckpointError, match="expected a model directory, a run directory or a Hub repo id, found a file"
    ):
        from_pretrained(tiny_dir / "config.json")


def test_the_model_methods_save_a_directory_with_a_sample_grid_that_loads_back(tiny_model, tmp_path):
    from PIL import Image

    directory = save_pretrained(tiny_model, tmp_path / "saved", samples=4)
    grid = Image.open(directory / "samples.png")
    # 2x2 grid of 8x8 images with 1-pixel padding, enlarged 8x for viewing: (2·9 + 1)·8 = 152
    assert grid.size == (152, 152)
    assert "![samples](samples.png)" in (directory / "README.md").read_text()
    assert tensor_digests(from_pretrained(directory)) == tensor_digests(tiny_model)
