"""The same round trip against the real Hugging Face Hub. Opt in with GENKIT_TEST_REAL_HUB=1 and a write token in
HF_TOKEN; it creates a private repo named genkit-test-<random> under the token's user and deletes it afterwards::

    GENKIT_TEST_REAL_HUB=1 HF_TOKEN=hf_… python -m pytest -m hub tests/test_hub_real.py
"""

from __future__ import annotations

import os
import uuid

import pytest
from pretrained_fixtures import elbo, tensor_digests, tiny_model, tiny_recipe  # noqa: F401

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(
        os.environ.get("GENKIT_TEST_REAL_HUB") != "1" or not os.environ.get("HF_TOKEN"),
        reason="talks to the real Hub: set GENKIT_TEST_REAL_HUB=1 and HF_TOKEN to run it",
    ),
]


def test_push_and_from_pretrained_on_the_real_hub_give_identical_weights_and_elbo(tiny_model, tmp_path):
    from huggingface_hub import HfApi

    from genkit.hub import from_pretrained, push_to_hub

    api = HfApi(endpoint="https://huggingface.co")
    repo_id = f"{api.whoami()['name']}/genkit-test-{uuid.uuid4().hex[:10]}"
    try:
        commit = push_to_hub(tiny_model, repo_id, private=True, samples=4, endpoint="https://huggingface.co")
        loaded = from_pretrained(
            repo_id, revision=commit.oid, cache_dir=tmp_path / "cache", endpoint="https://huggingface.co"
        )
        assert tensor_digests(loaded) == tensor_digests(tiny_model)
        assert elbo(loaded) == elbo(tiny_model)
        assert api.model_info(repo_id).library_name == "genkit"
    finally:
        api.delete_repo(repo_id, missing_ok=True)
