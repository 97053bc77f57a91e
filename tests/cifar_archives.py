"""Small CIFAR-10 archives in the official layout, for the tests of where data sets come from."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def cifar_archive(train: np.ndarray, test: np.ndarray, special: dict[str, tarfile.TarInfo] | None = None) -> bytes:
    """``cifar-10-python.tar.gz`` in the official layout: ``train`` (``(N, 3072)`` rows) over five batches, ``test``.

    ``special`` puts another kind of member (a link, a folder, a device) in place of the named batches.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, rows in [*zip(TRAIN_BATCHES, np.array_split(train, 5)), ("test_batch", test)]:
            if name in (special or {}):
                info = special[name]
                info.name = f"cifar-10-batches-py/{name}"
                tar.addfile(info)
                continue
            payload = pickle.dumps({b"labels": [0] * len(rows), b"data": rows}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def as_images(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.fixture
def cifar():
    """(archive bytes, its MD5, train rows, test rows): 40 training images, 6 test images."""
    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, (40, 3072), dtype=np.uint8)
    test = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    archive = cifar_archive(train, test)
    return archive, hashlib.md5(archive).hexdigest(), train, test
