"""Round trips through the fake Hub in fresh processes, where ``HF_ENDPOINT``/``HF_HUB_OFFLINE`` are read at import
as in real use: the Python API, and ``genkit push`` then ``genkit sample`` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import TOKEN, USER, fake_hub, hub_env  # noqa: F401
from pretrained_fixtures import elbo, tensor_digests, tiny_dir, tiny_model, tiny_recipe  # noqa: F401

from genkit.hub import from_pretrained, push_to_hub

TESTS = Path(__file__).resolve().parent
REPO = f"{USER}/tiny-vdvae"

# Loads REPO in a new interpreter and prints what the parent compares: tensor digests and the ELBO on the fixed batch.
LOAD_AND_SCORE = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
import genkit
from pretrained_fixtures import elbo, tensor_digests
model = genkit.from_pretrained({REPO!r})
print(json.dumps({{"training": model.training, "digests": tensor_digests(model), "elbo": elbo(model)}}))
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GENKIT_LOAD_PLUGINS": "", **env}
    done = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_a_fresh_process_loads_a_pushed_model_with_identical_weights_and_elbo(fake_hub, hub_env, tiny_dir, tiny_model):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    out = json.loads(_run([sys.executable, "-c", LOAD_AND_SCORE], hub_env).stdout)
    assert out["training"] is False
    assert out["digests"] == tensor_digests(tiny_model)
    assert out["elbo"] == elbo(tiny_model)


def test_with_hf_hub_offline_a_fresh_process_loads_the_cached_model_without_any_request(
    fake_hub, hub_env, tiny_dir, tiny_model
):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    from_pretrained(REPO, endpoint=fake_hub.url)  # fills this test's cache (HF_HUB_CACHE) online
    before = len(fake_hub.requests)
    out = json.loads(_run([sys.executable, "-c", LOAD_AND_SCORE], {**hub_env, "HF_HUB_OFFLINE": "1"}).stdout)
    assert len(fake_hub.requests) == before
    assert out["digests"] == tensor_digests(tiny_model) and out["elbo"] == elbo(tiny_model)


@pytest.mark.slow
def test_genkit_push_then_genkit_sample_by_hub_id_on_the_command_line(
    fake_hub, hub_env, tiny_dir, tiny_model, tmp_path
):
    genkit = [sys.executable, "-m", "genkit"]
    pushed = _run(
        [*genkit, "push", str(tiny_dir), REPO, "--token", TOKEN, "--samples", "4", "--message", "tiny model"], hub_env
    )
    assert pushed.stdout.startswith(f"pushed {tiny_dir} to {REPO}: {fake_hub.url}/{REPO}/commit/")
    repo = fake_hub.repos[REPO]
    assert repo.commits[repo.branches["main"]].summary == "tiny model"

    sampled = _run(
        [
            *genkit,
            "sample",
            REPO,
            "--n",
            "4",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "s.png"),
            "--npy",
            str(tmp_path / "s.npy"),
        ],
        hub_env,
    )
    assert "wrote 4 samples" in sampled.stdout
    import torch

    expected = tiny_model.sample(4, temperature=1.0, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), expected.numpy())


def test_genkit_push_failures_print_one_line(fake_hub, hub_env, tiny_dir, capsys):
    from genkit.cli import main

    assert main(["push", str(tiny_dir), REPO, "--token", "hf_wrong", "--samples", "0"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"genkit: error: pushing {tiny_dir} to {REPO} on {fake_hub.url}: the Hub answered 401")
        and err.count("\n") == 1
    )


def test_genkit_push_refuses_an_evaluation_without_a_split(tiny_dir, tmp_path, capsys):
    from genkit.cli import main

    (tmp_path / "e.json").write_text(json.dumps({"bits_per_dim": 4.2}))
    assert main(["push", str(tiny_dir), REPO, "--eval", str(tmp_path / "e.json")]) == 2
    assert (
        "e.json: split: expected a split name, found None (write it with genkit eval MODEL --split test --json FILE)"
        in capsys.readouterr().err
    )
