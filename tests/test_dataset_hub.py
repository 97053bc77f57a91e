"""Data sets from Hugging Face Hub data-set repos: CIFAR-10's official archive, .npy arrays and image folders,
fetched once and then read offline, against the fake Hub of ``tests/hub_server.py`` on 127.0.0.1."""

from __future__ import annotations

import io

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
from cifar_archives import as_images, cifar  # noqa: F401
from hub_server import TOKEN, USER, fake_hub, hub_env  # noqa: F401
from PIL import Image
from test_datasets import build, images_of

from genkit.errors import ConfigError, DataError, HubError


def publish_dataset(hub, name: str, files: dict[str, bytes]) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token=TOKEN)
    repo_id = f"{USER}/{name}"
    api.create_repo(repo_id, repo_type="dataset")
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    api.create_commit(repo_id, operations, commit_message="add the data", repo_type="dataset")
    return repo_id


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_cifar10_from_a_hub_data_set_repo_is_fetched_once_and_then_read_offline(fake_hub, hub_env, cifar, monkeypatch):
    archive, md5, train, test = cifar
    repo = publish_dataset(
        fake_hub,
        "cifar10-python",
        {"cifar-10-python.tar.gz": archive, "README.md": b"---\nlicense: mit\n---\n# CIFAR-10\n"},
    )
    data = build("cifar10", hub=repo, md5=md5, validation_size=0)
    assert np.array_equal(images_of(data.split("train")), as_images(train))
    fetched = [path for method, path in fake_hub.requests if method == "GET" and "/resolve/" in path]
    assert fetched == [f"/datasets/{repo}/resolve/{fake_hub.datasets[repo].branches['main']}/cifar-10-python.tar.gz"]
    before = len(fake_hub.requests)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    offline = build("cifar10", hub=repo, md5=md5, validation_size=0)
    assert np.array_equal(images_of(offline.split("test")), as_images(test))
    assert len(fake_hub.requests) == before


def test_a_hub_data_set_with_downloads_off_and_no_cached_copy_is_one_line_and_no_request(fake_hub, hub_env, cifar):
    archive, md5, _, _ = cifar
    repo = publish_dataset(fake_hub, "cifar10-python", {"cifar-10-python.tar.gz": archive})
    before = len(fake_hub.requests)
    with pytest.raises(HubError) as info:
        build("cifar10", hub=repo, md5=md5, download=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{repo}: not in the Hugging Face cache")
    assert (
        "downloads are off (data.download = false); fetch it once online, or point data.root at a local copy" in message
    )
    assert len(fake_hub.requests) == before


def test_an_unknown_hub_data_set_is_one_line_naming_it(fake_hub, hub_env):
    with pytest.raises(HubError, match=rf"^{USER}/nothing: no such data-set repository on {fake_hub.url} "):
        build("cifar10", hub=f"{USER}/nothing")


def test_a_hub_data_set_without_the_official_archive_says_what_genkit_reads(fake_hub, hub_env):
    repo = publish_dataset(fake_hub, "cifar10-parquet", {"plain_text/train-00000-of-00001.parquet": b"PAR1"})
    with pytest.raises(DataError, match=rf"^{repo}: the Hub data-set repo holds neither cifar-10-python.tar.gz"):
        build("cifar10", hub=repo)


def test_root_and_hub_together_are_refused_when_the_recipe_resolves(tmp_path):
    from genkit.recipe import recipe_from_dict

    raw = {"model": {"name": "vdvae"}, "data": {"name": "cifar10", "root": str(tmp_path), "hub": "a/b"}}
    with pytest.raises(ConfigError, match=r"^r.toml: data.hub: expected either data.root or data.hub, not both"):
        recipe_from_dict(raw, file="r.toml")


def test_npy_arrays_from_a_hub_data_set_repo(fake_hub, hub_env):
    rng = np.random.default_rng(8)
    arrays = {name: rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8) for name, n in [("train", 5), ("test", 3)]}
    repo = publish_dataset(fake_hub, "tiny-npy", {f"{name}.npy": npy_bytes(a) for name, a in arrays.items()})
    data = build("npy", hub=repo, validation_size=2)
    order = np.random.RandomState(0).permutation(5)
    assert np.array_equal(images_of(data.split("validation")), arrays["train"][order[-2:]])
    assert np.array_equal(images_of(data.split("test")), arrays["test"])


def test_an_image_folder_from_a_hub_data_set_repo(fake_hub, hub_env):
    rng = np.random.default_rng(9)
    made = {
        name: rng.integers(0, 256, (n, 5, 6, 3), dtype=np.uint8)
        for name, n in [("train", 3), ("valid", 2), ("test", 2)]
    }
    files = {f"{name}/{i:03d}.png": png_bytes(image) for name, images in made.items() for i, image in enumerate(images)}
    repo = publish_dataset(fake_hub, "tiny-folder", files)
    data = build("image-folder", hub=repo)
    assert np.array_equal(images_of(data.split("train")), made["train"])
    assert np.array_equal(images_of(data.split("validation")), made["valid"])


def test_npy_with_neither_root_nor_hub_says_to_set_one():
    with pytest.raises(
        ConfigError, match=r"^data.root: expected a folder holding train.npy and test.npy \(or data.hub"
    ):
        build("npy")
