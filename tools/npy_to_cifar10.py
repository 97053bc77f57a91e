"""Write uint8 image arrays as a CIFAR-10 python release, so genkit's cifar10 data set reads them.

    python tools/npy_to_cifar10.py TRAIN.npy TEST.npy OUT/cifar-10-python.tar.gz

TRAIN and TEST are ``uint8`` ``(N, 32, 32, 3)`` arrays (``numpy.save``). The tarball has the
official layout — ``cifar-10-batches-py/data_batch_1`` … ``data_batch_5`` and ``test_batch``,
each a pickled dict whose ``b"data"`` is ``(n, 3072)`` in channel-major order — with labels set
to 0. Its MD5 is not the official one: train with ``--set data.md5=""``, and with a
``data.validation_size`` smaller than the training images. The project's GPU sessions use it to
train the CIFAR-10 recipe through the real-format reader on natural images (tools/gpu-check.sh).
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"


def batch_bytes(images: np.ndarray, name: str) -> bytes:
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)  # (N, H, W, C) -> channel-major rows
    record = {
        b"batch_label": name.encode(),
        b"labels": [0] * len(images),
        b"data": np.ascontiguousarray(rows, dtype=np.uint8),
        b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(record, protocol=2)


def write_tarball(train: np.ndarray, test: np.ndarray, out: Path) -> None:
    for name, array in (("train", train), ("test", test)):
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (32, 32, 3):
            raise ValueError(f"{name}: expected uint8 (N, 32, 32, 3), found {array.dtype} {array.shape}")
    if len(train) < 5:
        raise ValueError(f"train: {len(train)} images cannot fill five batches")
    members = [(f"data_batch_{i + 1}", part) for i, part in enumerate(np.array_split(train, 5))] + [
        ("test_batch", test)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for name, part in members:
            data = batch_bytes(part, name)
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        write_tarball(np.load(args.train), np.load(args.test), args.out)
    except (OSError, ValueError) as exc:
        print(f"npy_to_cifar10: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
