"""Publishing to and loading from a Hub, through the real ``huggingface_hub`` client against ``tests/hub_server.py``."""

from __future__ import annotations

import json

import pytest
import yaml
from hub_server import TOKEN, USER, fake_hub, hub_env  # noqa: F401
from pretrained_fixtures import elbo, perturbed, tensor_digests, tiny_dir, tiny_model, tiny_recipe  # noqa: F401

from genkit.cards import GENERATED_MARK
from genkit.errors import CheckpointError, HubError
from genkit.hub import from_pretrained, push_to_hub

REPO = f"{USER}/tiny-vdvae"


def _api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=TOKEN)


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_push_publishes_exactly_the_model_directory_files(fake_hub, hub_env, tiny_dir):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=4)
    files = sorted(f.path for f in _api(fake_hub).list_repo_tree(REPO, recursive=True))
    assert files == [".gitattributes", "README.md", "config.json", "eval.json", "model.safetensors", "samples.png"]
    repo = fake_hub.repos[REPO]
    published = repo.commits[repo.branches["main"]].files
    assert fake_hub.blob(published["model.safetensors"]) == (tiny_dir / "model.safetensors").read_bytes()
    assert fake_hub.blob(published["config.json"]) == (tiny_dir / "config.json").read_bytes()


def test_the_card_carries_the_hub_metadata_and_the_bits_per_dim_with_split_and_method(fake_hub, hub_env, tiny_dir):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=4, license="apache-2.0")
    info = _api(fake_hub).model_info(REPO)
    assert info.library_name == "genkit"
    assert {"genkit", "vdvae", "digits"} <= set(info.tags)
    card = _front_matter(fake_hub.blob(fake_hub.repos[REPO].commits[info.sha].files["README.md"]).decode())
    assert card["license"] == "apache-2.0" and card["pipeline_tag"] == "unconditional-image-generation"
    (result,) = card["model-index"][0]["results"]
    assert card["model-index"][0]["name"] == "tiny-vdvae"
    assert result["dataset"] == {"name": "UCI handwritten digits (8x8)", "type": "digits", "split": "test"}
    assert result["metrics"] == [
        {"type": "bits-per-dim", "value": 4.3211, "name": "negative ELBO, one posterior sample per image (bits/dim)"}
    ]


def test_the_card_says_how_to_load_the_repo_and_shows_the_samples(fake_hub, hub_env, tiny_dir):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=4)
    repo = fake_hub.repos[REPO]
    text = fake_hub.blob(repo.commits[repo.branches["main"]].files["README.md"]).decode()
    assert f'genkit.from_pretrained("{REPO}")' in text
    assert "![samples](samples.png)" in text and "temperature 0.9" in text
    assert "| 360 | negative ELBO, one posterior sample per image |" in text
    assert GENERATED_MARK in text


def test_an_authors_own_card_is_published_unchanged(fake_hub, hub_env, tiny_dir):
    own = "---\nlibrary_name: genkit\nlicense: mit\n---\n# My model\n"
    (tiny_dir / "README.md").write_text(own)
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    repo = fake_hub.repos[REPO]
    assert fake_hub.blob(repo.commits[repo.branches["main"]].files["README.md"]).decode() == own


def test_from_pretrained_of_a_pushed_model_gives_identical_weights_and_elbo(fake_hub, hub_env, tiny_dir, tiny_model):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    loaded = from_pretrained(REPO, endpoint=fake_hub.url)
    assert not loaded.training
    assert tensor_digests(loaded) == tensor_digests(tiny_model)
    assert elbo(loaded) == elbo(tiny_model)


def test_the_model_method_pushes_a_built_model(fake_hub, hub_env, tiny_model):
    commit = push_to_hub(tiny_model, REPO, token=TOKEN, commit_message="first upload", endpoint=fake_hub.url, samples=0)
    repo = fake_hub.repos[REPO]
    assert commit.oid == repo.branches["main"] and repo.commits[commit.oid].summary == "first upload"
    assert tensor_digests(from_pretrained(REPO, endpoint=fake_hub.url)) == tensor_digests(tiny_model)


def test_each_push_is_a_new_revision_and_old_revisions_stay_loadable(fake_hub, hub_env, tiny_model, tiny_recipe):
    from genkit.models import build_model

    first = push_to_hub(tiny_model, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    retrained = perturbed(build_model(tiny_recipe), seed=7)
    second = push_to_hub(retrained, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    assert first.oid != second.oid
    assert tensor_digests(from_pretrained(REPO, endpoint=fake_hub.url)) == tensor_digests(retrained)
    assert tensor_digests(from_pretrained(REPO, revision=first.oid, endpoint=fake_hub.url)) == tensor_digests(
        tiny_model
    )


def test_push_to_a_branch_leaves_main_alone(fake_hub, hub_env, tiny_model, tiny_recipe):
    from genkit.models import build_model

    push_to_hub(tiny_model, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    candidate = perturbed(build_model(tiny_recipe), seed=3)
    push_to_hub(candidate, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0, revision="candidate")
    assert tensor_digests(from_pretrained(REPO, endpoint=fake_hub.url)) == tensor_digests(tiny_model)
    assert tensor_digests(from_pretrained(REPO, revision="candidate", endpoint=fake_hub.url)) == tensor_digests(
        candidate
    )


def test_an_unknown_revision_fails_naming_it(fake_hub, hub_env, tiny_model):
    push_to_hub(tiny_model, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    with pytest.raises(HubError, match=rf"^{REPO}: revision 'v9' not found on http://127.0.0.1:\d+$"):
        from_pretrained(REPO, revision="v9", endpoint=fake_hub.url)


def test_an_unknown_repo_fails_with_one_line(fake_hub, hub_env):
    with pytest.raises(
        HubError, match=rf"^{USER}/nope: no such local directory, and no such model repository on {fake_hub.url} "
    ):
        from_pretrained(f"{USER}/nope", endpoint=fake_hub.url)


def test_a_name_that_is_neither_a_directory_nor_a_repo_id_fails_with_one_line(hub_env):
    with pytest.raises(CheckpointError, match=r"^no/such/dir: no such local directory, and not a Hub repo id"):
        from_pretrained("no/such/dir")


def test_a_private_repo_needs_the_token_to_load(fake_hub, hub_env, tiny_model):
    push_to_hub(tiny_model, REPO, private=True, token=TOKEN, endpoint=fake_hub.url, samples=0)
    assert fake_hub.repos[REPO].private
    with pytest.raises(HubError, match="if it is private, pass a token"):
        from_pretrained(REPO, endpoint=fake_hub.url)
    assert tensor_digests(from_pretrained(REPO, token=TOKEN, endpoint=fake_hub.url)) == tensor_digests(tiny_model)


def test_a_refused_token_fails_with_one_line_and_a_hint(fake_hub, hub_env, tiny_dir):
    with pytest.raises(
        HubError, match=r"the Hub answered 401 \(Invalid credentials in Authorization header\) \(log in with"
    ):
        push_to_hub(tiny_dir, REPO, token="hf_wrong", endpoint=fake_hub.url, samples=0)


def test_an_unreachable_endpoint_fails_with_one_line(hub_env, tiny_dir):
    with pytest.raises(HubError, match=r"could not reach http://127.0.0.1:9"):
        push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint="http://127.0.0.1:9", samples=0)


def test_a_damaged_directory_is_never_published(fake_hub, hub_env, tiny_dir):
    data = (tiny_dir / "model.safetensors").read_bytes()
    (tiny_dir / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="altered or truncated"):
        push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    assert REPO not in fake_hub.repos


def test_loading_fetches_only_the_safetensors_config_and_card_never_pickles(fake_hub, hub_env, tiny_dir):
    from huggingface_hub import CommitOperationAdd

    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    _api(fake_hub).create_commit(
        REPO,
        [CommitOperationAdd("pytorch_model.bin", b"pickle bytes"), CommitOperationAdd("model.pt", b"more")],
        commit_message="pickles",
    )
    snapshot = from_pretrained(REPO, endpoint=fake_hub.url)
    fetched = {path.rsplit("/", 1)[-1] for method, path in fake_hub.requests if "/resolve/" in path and method == "GET"}
    assert fetched == {"config.json", "model.safetensors", "README.md"}
    assert snapshot is not None


def test_a_repo_with_only_pickled_weights_is_refused(fake_hub, hub_env, tiny_dir):
    from huggingface_hub import CommitOperationAdd

    api = _api(fake_hub)
    api.create_repo(REPO)
    api.create_commit(
        REPO,
        [
            CommitOperationAdd("config.json", (tiny_dir / "config.json").read_bytes()),
            CommitOperationAdd("pytorch_model.bin", b"x"),
        ],
        commit_message="old-style upload",
    )
    with pytest.raises(
        CheckpointError,
        match=r"has no model.safetensors; genkit loads weights only from safetensors, never from pickle",
    ):
        from_pretrained(REPO, endpoint=fake_hub.url)


def test_local_files_only_loads_the_cached_copy_without_any_request(fake_hub, hub_env, tiny_dir, tiny_model):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    from_pretrained(REPO, endpoint=fake_hub.url)
    before = len(fake_hub.requests)
    fake_hub.stop()  # nothing is listening any more: a network call could not succeed
    loaded = from_pretrained(REPO, local_files_only=True, endpoint=fake_hub.url)
    assert len(fake_hub.requests) == before
    assert tensor_digests(loaded) == tensor_digests(tiny_model)


def test_local_files_only_without_a_cached_copy_fails_with_one_line(fake_hub, hub_env):
    with pytest.raises(
        HubError, match=r"not in the Hugging Face cache \(.+\) and downloads are off \(local_files_only=True\)"
    ):
        from_pretrained(REPO, local_files_only=True, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_offline_mode_loads_the_cached_copy_without_any_request(fake_hub, hub_env, tiny_dir, tiny_model, monkeypatch):
    import huggingface_hub.constants

    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    from_pretrained(REPO, endpoint=fake_hub.url)
    before = len(fake_hub.requests)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    assert tensor_digests(from_pretrained(REPO, endpoint=fake_hub.url)) == tensor_digests(tiny_model)
    assert len(fake_hub.requests) == before
    with pytest.raises(HubError, match=r"cannot push .*HF_HUB_OFFLINE=1"):
        push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)


def test_the_cache_dir_argument_keeps_downloads_there(fake_hub, hub_env, tiny_dir, tmp_path):
    push_to_hub(tiny_dir, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    from_pretrained(REPO, endpoint=fake_hub.url, cache_dir=tmp_path / "elsewhere")
    (snapshot,) = (tmp_path / "elsewhere" / "models--genkit-tester--tiny-vdvae" / "snapshots").iterdir()
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((snapshot / "config.json").read_text()) == json.loads((tiny_dir / "config.json").read_text())


def test_push_of_a_run_directory_publishes_its_latest_ema_weights_and_never_the_training_state(
    fake_hub, hub_env, tiny_model, tiny_recipe, tmp_path
):
    from genkit.engine import checkpoint
    from genkit.models import build_model
    from genkit.recipe import save_recipe

    run = tmp_path / "run"
    save_recipe(tiny_recipe, run)
    older = perturbed(build_model(tiny_recipe), seed=11)
    checkpoint.save(run, step=10, trained=older, ema_model=older, recipe=tiny_recipe, state={"step": 10}, keep=3)
    checkpoint.save(run, step=20, trained=older, ema_model=tiny_model, recipe=tiny_recipe, state={"step": 20}, keep=3)
    push_to_hub(run, REPO, token=TOKEN, endpoint=fake_hub.url, samples=0)
    files = {f.path for f in _api(fake_hub).list_repo_tree(REPO)}
    assert "state.pt" not in files and "trained.safetensors" not in files
    assert tensor_digests(from_pretrained(REPO, endpoint=fake_hub.url)) == tensor_digests(tiny_model)


def test_pushing_leaves_the_model_directory_untouched(fake_hub, hub_env, tiny_dir):
    before = {p.name: p.read_bytes() for p in tiny_dir.iterdir()}
    push_to_hub(
        tiny_dir,
        REPO,
        token=TOKEN,
        endpoint=fake_hub.url,
        samples=4,
        evaluation={"split": "validation", "bits_per_dim": 4.5},
    )
    assert {p.name: p.read_bytes() for p in tiny_dir.iterdir()} == before
