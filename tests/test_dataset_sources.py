"""Where data sets come from: CIFAR-10 fetched once into the cache and verified, offline switches, many processes,
and CIFAR-10 on all 50,000 training images (Hub data-set repos: test_dataset_hub.py). Every server here listens on
127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import huggingface_hub.constants as hf_constants
import numpy as np
import pytest
from cifar_archives import as_images, cifar, cifar_archive  # noqa: F401
from file_server import file_server  # noqa: F401
from locations import ROOT
from test_datasets import build, images_of

from genkit.downloads import CACHE_ENV
from genkit.errors import DataError

OFFICIAL_PATH = "/~kriz/cifar-10-python.tar.gz"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty genkit cache (``GENKIT_CACHE``), with the Hugging Face offline switch off."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "cache"


@pytest.fixture
def official(file_server, cifar):
    """The archive served where the official one is, on 127.0.0.1: (server, url, md5, train rows, test rows)."""
    archive, md5, train, test = cifar
    file_server.files[OFFICIAL_PATH] = archive
    return file_server, file_server.url(OFFICIAL_PATH), md5, train, test


# --- CIFAR-10 fetches itself ------------------------------------------------------------------------


def test_cifar10_is_fetched_into_the_cache_once_then_read_from_it_without_any_request(official, cache):
    server, url, md5, train, test = official
    first = build("cifar10", url=url, md5=md5, validation_size=0)
    assert (cache / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == server.files[OFFICIAL_PATH]
    assert np.array_equal(images_of(first.split("test")), as_images(test))
    assert np.array_equal(images_of(first.split("train")), as_images(train))
    assert len(server.requests) == 1
    again = build("cifar10", url=url, md5=md5, validation_size=0)
    assert len(server.requests) == 1
    assert np.array_equal(images_of(again.split("train")), as_images(train))


def test_cifar10_root_naming_a_folder_without_a_copy_is_where_the_download_goes(official, cache, tmp_path):
    _, url, md5, _, _ = official
    build("cifar10", root=str(tmp_path / "mine"), url=url, md5=md5, validation_size=0)
    assert (tmp_path / "mine" / "cifar-10-python.tar.gz").is_file()
    assert not (cache / "cifar10").exists()


def test_cifar10_download_with_the_wrong_checksum_stops_naming_the_url_and_both_checksums(official, cache):
    server, url, md5, _, _ = official
    expected = "0123456789abcdef0123456789abcdef"
    with pytest.raises(DataError) as info:
        build("cifar10", url=url, md5=expected)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{url}: ")
    assert f"MD5 is {md5}, expected {expected}" in message and "cs.toronto.edu/~kriz/cifar.html" in message
    assert not [p.name for p in (cache / "cifar10").iterdir() if p.name.endswith((".tar.gz", ".part"))]


def test_cifar10_download_from_a_server_that_is_down_is_one_line_saying_what_else_to_do(official, cache):
    server, url, md5, _, _ = official
    server.stop()
    with pytest.raises(DataError) as info:
        build("cifar10", url=url, md5=md5)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{url}: could not connect (Connection refused)")
    assert message.endswith(
        "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and set data.root to it"
    )


def test_cifar10_transfer_cut_halfway_is_resumed_and_verified(official, cache):
    server, url, md5, train, _ = official
    server.cut = 1
    data = build("cifar10", url=url, md5=md5, validation_size=0)
    size = len(server.files[OFFICIAL_PATH])
    assert server.gets(OFFICIAL_PATH) == [None, f"bytes={size // 2}-"]
    assert np.array_equal(images_of(data.split("train")), as_images(train))


def test_a_damaged_cached_download_says_it_is_genkits_own_and_which_file_to_delete(official, cache):
    server, url, md5, train, _ = official
    build("cifar10", url=url, md5=md5, validation_size=0)
    archive = cache / "cifar10" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:1000])  # damaged on disk after it was verified
    with pytest.raises(DataError) as info:
        build("cifar10", url=url, md5="", validation_size=0)
    assert str(info.value).startswith(f"{archive}: not a readable .tar.gz (")
    assert str(info.value).endswith(
        f"; it is genkit's own download of {url}: delete {archive} and genkit downloads it again"
    )
    archive.unlink()
    assert np.array_equal(
        images_of(build("cifar10", url=url, md5=md5, validation_size=0).split("train")), as_images(train)
    )


# --- offline stays offline --------------------------------------------------------------------------


def test_with_download_false_nothing_is_requested_and_the_message_says_where_to_get_it(official, cache):
    server, url, md5, _, _ = official
    with pytest.raises(DataError) as info:
        build("cifar10", url=url, md5=md5, download=False)
    assert str(info.value) == (
        f"{cache / 'cifar10'}: found neither cifar-10-python.tar.gz nor an extracted cifar-10-batches-py folder there, "
        "and downloads are off (data.download = false); "
        "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
    )
    assert server.requests == []


def test_with_hf_hub_offline_nothing_is_requested(official, cache, monkeypatch):
    server, url, md5, _, _ = official
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    with pytest.raises(DataError, match=r"downloads are off \(HF_HUB_OFFLINE=1\); get cifar-10-python.tar.gz from"):
        build("cifar10", url=url, md5=md5)
    assert server.requests == []


OFFLINE_BUILD = """
import sys
from genkit.errors import DataError
from genkit_plugins.datasets.cifar import Cifar10, Cifar10Settings
try:
    Cifar10(Cifar10Settings(url=sys.argv[1], md5=sys.argv[2]))
except DataError as exc:
    print(exc)
"""


def test_hf_hub_offline_in_the_environment_of_a_fresh_process_keeps_it_off_the_network(official, cache):
    server, url, md5, _, _ = official
    env = {**os.environ, CACHE_ENV: str(cache), "GENKIT_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_BUILD, url, md5], capture_output=True, text=True, env=env, timeout=120
    )
    assert "downloads are off (HF_HUB_OFFLINE=1); get cifar-10-python.tar.gz from" in done.stdout, done.stderr
    assert server.requests == []


def test_a_verified_copy_is_read_offline_without_any_request(official, cache, monkeypatch):
    server, url, md5, train, _ = official
    build("cifar10", url=url, md5=md5, validation_size=0)
    server.stop()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    data = build("cifar10", url=url, md5=md5, validation_size=0, download=False)
    assert np.array_equal(images_of(data.split("train")), as_images(train))
    assert len(server.requests) == 1


# --- many processes, one download -------------------------------------------------------------------

RACER = """
import hashlib, sys, time
from pathlib import Path
import numpy as np
from genkit_plugins.datasets.cifar import Cifar10, Cifar10Settings
url, md5, ready, go = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
data = Cifar10(Cifar10Settings(url=url, md5=md5, validation_size=0))
print(hashlib.sha256(np.ascontiguousarray(data.split("train").images)).hexdigest())
"""


def test_two_processes_racing_for_the_download_fetch_it_once_and_both_read_it(official, cache, tmp_path):
    server, url, md5, train, _ = official
    server.block, server.delay = 8192, 0.05  # about a second on the wire: the second process finds it under way
    env = {**os.environ, CACHE_ENV: str(cache), "GENKIT_LOAD_PLUGINS": ""}
    env.pop("HF_HUB_OFFLINE", None)
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, md5, str(tmp_path / f"ready-{i}"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert all(r.poll() is None for r in racers) and time.monotonic() < deadline, "a racer did not start"
        time.sleep(0.01)
    go.touch()
    outputs = [r.communicate(timeout=120) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], [err for _, err in outputs]
    digest = hashlib.sha256(np.ascontiguousarray(as_images(train))).hexdigest()
    assert [out.strip() for out, _ in outputs] == [digest, digest]
    assert server.gets(OFFICIAL_PATH) == [None]
    assert sum("waiting for another process" in err for _, err in outputs) == 1


# --- CIFAR-10 on all 50,000 training images ------------------------------------------------------------


def test_validation_size_0_trains_on_every_training_image_and_validates_on_the_test_set(official, cache):
    _, url, md5, train, test = official
    data = build("cifar10", url=url, md5=md5, validation_size=0)
    assert np.array_equal(images_of(data.split("train")), as_images(train))
    assert np.array_equal(images_of(data.split("validation")), as_images(test))
    assert np.array_equal(images_of(data.split("test")), as_images(test))
    assert data.validation_is_test


def test_the_default_hold_out_is_still_the_reference_5000(official, cache):
    from genkit_plugins.datasets.cifar import Cifar10Settings

    _, url, md5, _, _ = official
    assert Cifar10Settings().validation_size == 5000
    assert not build("cifar10", url=url, md5=md5, validation_size=10).validation_is_test


def test_cifar10_recipes_fetch_from_the_official_address_into_the_cache_with_nothing_else_given():
    from genkit.recipe import load_recipe
    from genkit.recipefiles import read_recipe

    assert (
        read_recipe(ROOT / "recipes" / "cifar10-iaf.toml")["data"]
        == read_recipe(ROOT / "recipes" / "cifar10.toml")["data"]
    )
    for path in (ROOT / "recipes" / "cifar10.toml",):
        settings = load_recipe(path).data.settings
        assert (settings.root, settings.download, settings.hub) == ("", True, "")
        assert settings.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
        assert settings.md5 == "c58f30108f718f92721af3b95e74349a"


def test_genkit_run_fetches_cifar10_and_chooses_the_histogram_smoothing_without_looking_at_test(
    official, cache, tmp_path, capsys
):
    import engine_plugins
    import torch

    from genkit.cli import main
    from genkit.engine.baselines import trivial_baselines
    from genkit.registry import reset_registry

    # the test images are training images: smoothing chosen on them would be the smallest α
    server, url, _, train, _ = official
    archive = cifar_archive(train, train[:6])
    server.files[OFFICIAL_PATH] = archive
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        '[model]\nname = "pixels"\nimage_size = 32\nchannels = 3\n'
        f'[data]\nname = "cifar10"\nurl = "{url}"\nmd5 = "{hashlib.md5(archive).hexdigest()}"\nvalidation_size = 0\n'
        "[train]\nsteps = 2\nbatch_size = 8\nnum_workers = 0\nlog_every = 2\neval_every = 2\ncheckpoint_every = 2\n"
        f'n_samples = 4\nout_dir = "{tmp_path / "runs"}"\n[eval]\nbatch_size = 8\n'
    )
    engine_plugins.install_registry()
    try:
        assert main(["run", str(recipe)]) == 0
    finally:
        reset_registry()
    baselines = json.loads((tmp_path / "runs" / "tiny" / "results.json").read_text())["baselines"]
    images = [torch.from_numpy(image) for image in np.ascontiguousarray(as_images(train))]
    assert trivial_baselines(images, images[:6], images[:6], 8)["pixel_histogram_alpha"] == 0.01  # had it looked
    assert baselines["pixel_histogram_alpha"] == trivial_baselines(images, None, images[:6], 8)["pixel_histogram_alpha"]
    assert baselines["pixel_histogram_alpha"] != 0.01
    assert (cache / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive


# --- data sets genkit cannot fetch say what the user must do -----------------------------------------------


def test_imagenet_says_it_needs_a_login_and_ffhq_says_it_sits_behind_a_quota(tmp_path):
    with pytest.raises(DataError, match=r"imagenet32-train.npy: not found; .*image-net.org asks for a login"):
        build("imagenet32", root=str(tmp_path))
    with pytest.raises(DataError, match=r"train: folder not found; .*daily quota"):
        build("ffhq1024", root=str(tmp_path))
