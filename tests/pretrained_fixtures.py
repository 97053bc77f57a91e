"""Shared pieces of the model-directory and Hub tests: a very small VDVAE and a fixed batch to score it on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

# The smallest VDVAE that still has every part (3 resolutions, 5 latent layers, DMOL output) on the
# embedded 8x8 greyscale digits: ~10k parameters, so building, saving and scoring take milliseconds.
TINY_VDVAE = """
[model]
name = "vdvae"
image_size = 8
image_channels = 1
width = 16
zdim = 2
enc_blocks = "8x1,8d2,4x1,4d4,1x1"
dec_blocks = "1x1,4m1,4x1,8m4,8x1"
num_mixtures = 2

[data]
name = "digits"

[train]
sample_temperature = 0.9

[eval]
batch_size = 16
max_images = 16
"""


def fixed_batch() -> torch.Tensor:
    """Four 8x8x1 ``uint8`` images from a seeded generator: the batch every ELBO comparison uses."""
    return torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(1234))


def elbo(model: torch.nn.Module) -> list[float]:
    """Per-image negative ELBO (nats/dim) on the fixed batch with every latent at its mean (deterministic)."""
    with torch.no_grad():
        return model(fixed_batch(), latents="mean").nll.double().tolist()


def tensor_digests(model: torch.nn.Module) -> dict[str, str]:
    """sha256 of every tensor's bytes: equal digests mean bit-identical weights."""
    return {
        k: hashlib.sha256(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        for k, v in model.state_dict().items()
    }


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initial value (many start at exactly zero), so a wrong copy shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


@pytest.fixture
def tiny_recipe(tmp_path):
    from genkit.recipe import load_recipe

    path = tmp_path / "tiny-vdvae.toml"
    path.write_text(TINY_VDVAE)
    return load_recipe(path)


@pytest.fixture
def tiny_model(tiny_recipe):
    from genkit.models import build_model

    torch.manual_seed(0)
    return perturbed(build_model(tiny_recipe)).eval()


@pytest.fixture
def tiny_dir(tiny_model, tmp_path):
    """A saved model directory of ``tiny_model`` (no sample grid) with an evaluation record beside it."""
    from genkit.pretrained import save_pretrained

    directory = save_pretrained(tiny_model, tmp_path / "tiny-model")
    evaluation = {
        "split": "test",
        "bits_per_dim": 4.3211,
        "images": 360,
        "method": "negative ELBO, one posterior sample per image",
    }
    (directory / "eval.json").write_text(json.dumps(evaluation))
    return directory


def rewrite_weights(directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace a model directory's weights *consistently* (recording their new sha256), as a buggy exporter would."""
    from safetensors.torch import save_file

    save_file(tensors, str(directory / "model.safetensors"))
    config = json.loads((directory / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    (directory / "config.json").write_text(json.dumps(config))
