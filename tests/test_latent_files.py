"""Latents files (``genkit.save_latents``, ``genkit.load_latents``): what they hold, and each way one can misfit."""

from __future__ import annotations

import json
from copy import deepcopy as copy_module

import pytest
import torch
from pretrained_fixtures import TINY_VDVAE, perturbed
from safetensors import safe_open
from safetensors.torch import save_file

import genkit
from genkit.errors import DataError
from genkit.latentfiles import model_id
from genkit.latents import Latents

IMAGES = torch.randint(0, 256, (3, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """A tiny VDVAE, its posterior means of three images, and the file they were written to."""
    from genkit.models import build_model
    from genkit.recipe import load_recipe

    folder = tmp_path_factory.mktemp("latents")
    (folder / "tiny.toml").write_text(TINY_VDVAE)
    torch.manual_seed(0)
    model = perturbed(build_model(load_recipe(folder / "tiny.toml"))).eval()
    latents = model.encode_latents(IMAGES)
    return model, latents, genkit.save_latents(model, latents, folder / "latents.safetensors", source="tiny-model")


@pytest.fixture
def tiny_model(encoded):
    return encoded[0]


@pytest.fixture
def written(encoded, tmp_path):
    """A copy of the file for this test to spoil, and the latents it holds."""
    _, latents, path = encoded
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    return copy, latents


def read(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()  # noqa: SIM118


def test_a_latents_file_gives_back_every_tensor_bit_for_bit(tiny_model, written):
    path, latents = written
    loaded = genkit.load_latents(tiny_model, path)
    assert loaded.kind == "posterior mean" and list(loaded.tensors) == list(latents.tensors)
    for name, tensor in latents.tensors.items():
        assert torch.equal(loaded.tensors[name], tensor)


def test_a_latents_files_metadata_says_what_each_tensor_is_and_whose_it_is(tiny_model, written):
    path, _ = written
    tensors, metadata = read(path)
    assert metadata["format"] == "genkit-latents" and metadata["format_version"] == "1"
    assert metadata["model_id"] == model_id(tiny_model) and metadata["model"] == "tiny-model"
    assert metadata["kind"] == "posterior mean" and metadata["images"] == "3"
    for spec in tiny_model.latent_layout:
        assert json.loads(metadata[spec.name]) == {
            "layer": spec.layer,
            "resolution": spec.resolution,
            "kind": "posterior mean",
        }
        assert tensors[spec.name].shape == (3, *spec.shape)
    assert [json.loads(metadata[s.name])["resolution"] for s in tiny_model.latent_layout] == [1, 4, 4, 8, 8]


def test_the_model_id_is_the_weights_whatever_their_dtype(tiny_model):
    copy = copy_module(tiny_model)
    before = model_id(copy)
    assert model_id(copy.double()) == before
    assert model_id(perturbed(copy.float(), seed=1)) != before


def rewritten(path, tensors=None, metadata=None, drop=(), **replace):
    """The file at ``path`` written again with some tensors or metadata entries changed or left out."""
    old_tensors, old_metadata = read(path)
    tensors = {k: v for k, v in (tensors or old_tensors).items() if k not in drop}
    metadata = {k: v for k, v in (metadata or old_metadata).items() if k not in drop} | replace
    save_file(tensors, str(path), metadata=metadata)
    return path


def overwritten(path, text: str):
    path.write_text(text)
    return path


CASES = {
    "a layer too few": (lambda p: rewritten(p, drop=("layer_4",)), r"holds 4 tensors .*the model's latents are 5"),
    "a wrong shape": (
        lambda p: rewritten(p, tensors=read(p)[0] | {"layer_2": torch.zeros(3, 2, 8, 8)}),
        r"tensor 'layer_2' has shape \(3, 2, 8, 8\), expected \(N, 2, 4, 4\)",
    ),
    "another dtype": (
        lambda p: rewritten(p, tensors={k: v.double() for k, v in read(p)[0].items()}),
        "tensor 'layer_0' is float64 and the model runs in float32; decode with the --dtype",
    ),
    "no format": (lambda p: rewritten(p, drop=("format",)), "not a genkit latents file"),
    "no image count": (lambda p: rewritten(p, drop=("images",)), "its metadata lacks 'images'"),
    "a wrong image count": (lambda p: rewritten(p, images="4"), "metadata says 4 images, its tensors hold 3"),
    "no entry of a tensor": (
        lambda p: rewritten(p, metadata={k: v for k, v in read(p)[1].items() if k != "layer_3"}),
        "no entry for tensor 'layer_3'",
    ),
    "a wrong entry": (
        lambda p: rewritten(p, layer_3=json.dumps({"layer": 2, "resolution": 8, "kind": "posterior mean"})),
        "the metadata of tensor 'layer_3' is",
    ),
    "an unknown kind": (lambda p: rewritten(p, kind="posterior median"), "kind 'posterior median'"),
    "another model's": (
        lambda p: rewritten(p, model_id="sha256:" + "0" * 64),
        r"the latents of another model \(tiny-model\), whose weights differ",
    ),
    "not safetensors": (lambda p: overwritten(p, "not a tensor file"), "not a readable safetensors file"),
    "no file": (lambda p: p.with_name("missing.safetensors"), "latents file not found"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_latents_file_that_does_not_fit_the_model_is_refused_naming_the_file(case, tiny_model, written):
    spoil, message = CASES[case]
    path = spoil(written[0])
    with pytest.raises(DataError, match=message) as error:
        genkit.load_latents(tiny_model, path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_latents_that_do_not_fit_are_not_written(tiny_model, tmp_path):
    bad = Latents({"layer_0": torch.zeros(1, 2, 1, 1)}, "posterior mean")
    with pytest.raises(DataError, match="save_latents: holds 1 tensor"):
        genkit.save_latents(tiny_model, bad, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
