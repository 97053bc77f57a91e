"""Data-set plugins read the real file formats, split as the reference does, and fail with one clear line."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.errors import DataError
from genkit.registry import get_registry


def build(name, **settings):
    spec = get_registry().get("dataset", name)
    return spec.build(spec.config(**settings))


def images_of(split):
    return torch.stack([split[i] for i in range(len(split))]).numpy()


# --- CIFAR-10 ------------------------------------------------------------------------------------


def cifar_batch(rng, n):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return data, pickle.dumps(
        {b"batch_label": b"x", b"labels": list(range(n)), b"data": data, b"filenames": [b"f"] * n}, protocol=2
    )


@pytest.fixture
def cifar_tarball(tmp_path):
    """A cifar-10-python.tar.gz in the official layout: 5 × 8 training images, 6 test images."""
    rng = np.random.default_rng(0)
    rows = {}
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            rows[name], payload = cifar_batch(rng, 6 if name == "test_batch" else 8)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path, rows, hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_pixels_are_channel_major_rows_turned_into_hwc(cifar_tarball):
    path, rows, md5 = cifar_tarball
    data = build("cifar10", root=str(path), md5=md5, validation_size=10)
    test = images_of(data.split("test"))
    expected = rows["test_batch"].reshape(6, 3, 32, 32).transpose(0, 2, 3, 1)
    assert test.dtype == np.uint8 and np.array_equal(test, expected)
    assert data.image_shape == (32, 32, 3)


def test_cifar10_validation_is_the_reference_train_test_split(cifar_tarball):
    from sklearn.model_selection import train_test_split

    path, rows, md5 = cifar_tarball
    data = build("cifar10", root=str(path), md5=md5, validation_size=10)
    every = np.concatenate([rows[f"data_batch_{i}"] for i in range(1, 6)]).reshape(40, 3, 32, 32).transpose(0, 2, 3, 1)
    train, validation = train_test_split(every, test_size=10, random_state=11172018)
    assert np.array_equal(images_of(data.split("validation")), validation)
    assert np.array_equal(images_of(data.split("train")), train)


def test_cifar10_reads_the_extracted_folder_too(cifar_tarball, tmp_path):
    path, _, md5 = cifar_tarball
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    from_folder = build("cifar10", root=str(tmp_path / "extracted"), validation_size=10)
    from_tar = build("cifar10", root=str(path), md5=md5, validation_size=10)
    assert np.array_equal(images_of(from_folder.split("train")), images_of(from_tar.split("train")))


def test_cifar10_wrong_checksum_names_the_file_both_checksums_and_where_to_get_it(cifar_tarball):
    path, _, md5 = cifar_tarball
    with pytest.raises(DataError) as info:
        build("cifar10", root=str(path))  # the official MD5 is expected by default
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and md5 in message and "c58f30108f718f92721af3b95e74349a" in message
    assert "cs.toronto.edu" in message


def test_cifar10_missing_root_with_downloads_off_says_what_it_looked_for(tmp_path):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*cifar-10-batches-py.*data.download = false.*toronto"):
        build("cifar10", root=str(tmp_path / "nowhere"), download=False)


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    evil = pickle.dumps(print)  # any global other than numpy's array machinery
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(evil)
    with pytest.raises(DataError, match="data_batch_1: not a CIFAR-10 python batch"):
        build("cifar10", root=str(tmp_path))


# --- .npy families -------------------------------------------------------------------------------


def test_imagenet32_holds_out_5000_with_numpy_seed_42_and_tests_on_the_valid_file(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (5010, 32, 32, 3), dtype=np.uint8)
    valid = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "imagenet32-train.npy", train)
    np.save(tmp_path / "imagenet32-valid.npy", valid)
    data = build("imagenet32", root=str(tmp_path))
    np.random.seed(42)
    order = np.random.permutation(5010)
    assert np.array_equal(images_of(data.split("validation")), train[order[-5000:]])
    assert np.array_equal(images_of(data.split("train")), train[order[:-5000]])
    assert np.array_equal(images_of(data.split("test")), valid)


def test_imagenet64_rejects_32_pixel_arrays_naming_the_expected_shape(tmp_path):
    np.save(tmp_path / "imagenet64-train.npy", np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(
        DataError,
        match=(
            r"imagenet64-train.npy: found uint8 array of shape \(3, 32, 32, 3\); "
            r"expected a uint8 .npy array of shape \(N, 64, 64, 3\).*setup_imagenet"
        ),
    ):
        build("imagenet64", root=str(tmp_path))


def test_ffhq256_holds_out_with_seed_5_and_reports_on_the_held_out_images(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (12, 256, 256, 3), dtype=np.uint8)
    np.save(tmp_path / "ffhq-256.npy", images)
    data = build("ffhq256", root=str(tmp_path), validation_size=4)
    np.random.seed(5)
    order = np.random.permutation(12)
    assert np.array_equal(images_of(data.split("validation")), images[order[-4:]])
    assert np.array_equal(images_of(data.split("test")), images[order[-4:]])
    assert data.bits == 5


def test_a_truncated_npy_file_is_a_data_error_naming_it(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((4, 8, 8, 1), np.uint8))
    (tmp_path / "test.npy").write_bytes((tmp_path / "train.npy").read_bytes()[:100])
    with pytest.raises(DataError, match="test.npy: not a readable .npy file"):
        build("npy", root=str(tmp_path))


def test_npy_uses_validation_file_when_present(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {
        name: rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
        for name, n in [("train", 5), ("validation", 2), ("test", 3)]
    }
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
    data = build("npy", root=str(tmp_path))
    for name, array in arrays.items():
        assert np.array_equal(images_of(data.split(name)), array)


def test_getitems_returns_the_batch_in_the_order_asked(tmp_path):
    images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
    np.save(tmp_path / "train.npy", images)
    np.save(tmp_path / "test.npy", images)
    split = build("npy", root=str(tmp_path), validation_size=2).split("train")
    batch = split.__getitems__([5, 0, 3])
    assert np.array_equal(batch.numpy(), images[split.indices[[5, 0, 3]]])


# --- image folders ---------------------------------------------------------------------------------


def write_pngs(folder, images):
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def test_image_folder_with_split_subfolders_reads_each(tmp_path):
    rng = np.random.default_rng(4)
    made = {
        name: rng.integers(0, 256, (n, 5, 6, 3), dtype=np.uint8)
        for name, n in [("train", 4), ("valid", 2), ("test", 3)]
    }
    for name, images in made.items():
        write_pngs(tmp_path / name, images)
    data = build("image-folder", root=str(tmp_path))
    assert data.image_shape == (5, 6, 3)
    assert np.array_equal(images_of(data.split("validation")), made["valid"])
    assert np.array_equal(images_of(data.split("test")), made["test"])


def test_flat_image_folder_is_split_by_seeded_permutation(tmp_path):
    images = np.random.default_rng(5).integers(0, 256, (20, 4, 4), dtype=np.uint8)
    write_pngs(tmp_path / "all", images)
    data = build("image-folder", root=str(tmp_path / "all"), channels=1, validation_fraction=0.1, test_fraction=0.2)
    order = np.random.RandomState(0).permutation(20)
    assert np.array_equal(images_of(data.split("test"))[..., 0], images[order[-4:]])
    assert np.array_equal(images_of(data.split("validation"))[..., 0], images[order[:-4][-2:]])
    assert len(data.split("train")) == 14


def test_an_image_of_another_size_names_the_file(tmp_path):
    write_pngs(tmp_path / "train", np.zeros((2, 4, 4, 3), np.uint8))
    write_pngs(tmp_path / "valid", np.zeros((1, 4, 4, 3), np.uint8))
    write_pngs(tmp_path / "test", np.zeros((1, 5, 4, 3), np.uint8))
    data = build("image-folder", root=str(tmp_path))
    with pytest.raises(DataError, match=r"test/000.png: image is 4×5, expected 4×4"):
        data.split("test")[0]


def test_ffhq1024_missing_folder_points_to_the_setup_script(tmp_path):
    with pytest.raises(DataError, match="train: folder not found.*setup_ffhq1024"):
        build("ffhq1024", root=str(tmp_path))


# --- the embedded digits ----------------------------------------------------------------------------


def test_digits_map_the_17_counts_to_round_255k_over_16():
    from sklearn.datasets import load_digits

    data = build("digits")
    counts = load_digits().images  # the 1,797 images, counts 0-16, float64
    expected = np.rint(counts * 255 / 16).astype(np.uint8)[..., None]
    order = np.random.RandomState(0).permutation(1797)
    assert np.array_equal(images_of(data.split("train")), expected[order[:1257]])
    assert np.array_equal(images_of(data.split("test")), expected[order[1437:]])
    assert [len(data.split(s)) for s in ("train", "validation", "test")] == [1257, 180, 360]
    assert sorted(np.unique(expected).tolist()) == [
        0,
        16,
        32,
        48,
        64,
        80,
        96,
        112,
        128,
        143,
        159,
        175,
        191,
        207,
        223,
        239,
        255,
    ]


def test_digits_from_a_corrupt_file_is_one_line(tmp_path):
    path = tmp_path / "digits.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("1,2,3\n")
    with pytest.raises(DataError) as info:
        build("digits", root=str(path))
    assert "\n" not in str(info.value) and "1797 rows × 65" in str(info.value) and "scikit-learn" in str(info.value)


def test_digits_at_5_bits_keep_the_17_counts_apart_in_the_top_five_bits():
    from sklearn.datasets import load_digits

    data = build("digits", bits=5)
    counts = load_digits().images
    order = np.random.RandomState(0).permutation(1797)
    expected = (np.rint(counts * 31 / 16).astype(np.uint8) * 8)[..., None]
    assert data.bits == 5
    assert np.array_equal(images_of(data.split("validation")), expected[order[1257:1437]])
    assert len(np.unique(expected)) == 17 and (expected % 8 == 0).all()
