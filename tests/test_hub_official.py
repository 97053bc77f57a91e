"""An official-format VDVAE checkpoint, converted with ``genkit convert vdvae`` and published with ``genkit push``,
gives the same numbers through ``from_pretrained`` as the converted directory and as the reference implementation.

The checkpoint is the tiny fixture ``tests/fixtures/vdvae-tiny-8bit/reference-model-ema.th`` (the official
``*-model-ema.th`` format); the five published data sets follow the same commands (docs/publishing.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hub_server import TOKEN, USER, fake_hub, hub_env  # noqa: F401
from locations import FIXTURES, ROOT

from genkit.cli import main
from genkit.hub import from_pretrained

FIXTURE = FIXTURES / "vdvae-tiny-8bit"


def _scores(model) -> dict[str, list[float]]:
    images = torch.from_numpy(np.load(FIXTURE / "images_uint8.npy"))
    with torch.no_grad():
        terms = model(images, latents="mean")
    return {
        "elbo": terms.nll.double().tolist(),
        "distortion": terms.parts["distortion"].double().tolist(),
        "rate": terms.parts["rate"].double().tolist(),
    }


@pytest.mark.slow
def test_a_converted_official_checkpoint_scores_the_same_after_a_round_trip_through_the_hub(
    fake_hub, hub_env, tmp_path
):
    converted = tmp_path / "vdvae-tiny-8bit"
    recipe = ROOT / "tests" / "recipes" / "vdvae-tiny-8bit.toml"
    assert (
        main(
            [
                "convert",
                "vdvae",
                str(FIXTURE / "reference-model-ema.th"),
                "--recipe",
                str(recipe),
                "--out",
                str(converted),
            ]
        )
        == 0
    )
    repo = f"{USER}/vdvae-tiny-8bit"
    assert main(["push", str(converted), repo, "--token", TOKEN, "--samples", "0"]) == 0

    local = _scores(from_pretrained(converted))
    hub = _scores(from_pretrained(repo))
    assert hub == local  # bit-identical: same file, same code
    expected = json.loads((FIXTURE / "expected.json").read_text())
    # and both are the reference implementation's numbers (float32 weights and arithmetic: ~1e-4)
    np.testing.assert_allclose(hub["elbo"], expected["elbo_nats_per_dim"], rtol=1e-4)
    np.testing.assert_allclose(hub["rate"], expected["rate_nats_per_dim"], rtol=1e-3, atol=1e-6)
