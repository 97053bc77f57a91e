"""CIFAR-10 (Krizhevsky 2009) from the official python release, split as openai/vdvae splits it.

The release is ``cifar-10-python.tar.gz`` (MD5 c58f30108f718f92721af3b95e74349a): five training
batches and one test batch, each a pickled dict whose ``b"data"`` is ``(10000, 3072)`` ``uint8``
in channel-major order. ``root`` may be the tarball, the folder holding it, or the extracted
``cifar-10-batches-py`` folder (or its parent). The reference holds out 5,000 training images
with ``sklearn.model_selection.train_test_split(test_size=5000, random_state=11172018)``; we take
the same indices, so "validation" here is the reference's validation set image for image.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import attrs
import numpy as np
from einops import rearrange

from genkit.errors import DataError
from genkit.schema import in_range
from genkit_plugins.datasets.arrays import ArrayImageDataset, ArraySplit

TARBALL = "cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
WHERE = "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
REFERENCE_SPLIT_SEED = 11172018


@attrs.frozen
class Cifar10Settings:
    """Where the CIFAR-10 files are, and how the validation split is held out of the 50,000 training images."""

    root: str = "data/cifar10"
    md5: str = OFFICIAL_MD5  # of the tarball; "" skips the check (the extracted folder is never checksummed)
    validation_size: int = attrs.field(default=5000, validator=in_range(1))
    split_seed: int = REFERENCE_SPLIT_SEED


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds (dicts, lists, bytes, numpy arrays): never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store the array bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_batch(data: bytes, source: str) -> np.ndarray:
    """One batch as ``(N, 32, 32, 3)`` ``uint8``."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
    except Exception as exc:  # any damage in a pickle surfaces as a different exception type
        raise DataError(f"{source}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc}); {WHERE}") from None
    if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: batch data has shape {pixels.shape}, expected (N, 3072); {WHERE}")
    return rearrange(pixels, "n (c h w) -> n h w c", c=3, h=32, w=32)


def md5sum(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_tarball(path: Path, md5: str) -> dict[str, np.ndarray]:
    if md5:
        found = md5sum(path)
        if found != md5:
            raise DataError(
                f"{path}: MD5 is {found}, expected {md5} (the file is incomplete or not the official release); {WHERE}"
            )
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in [*TRAIN_BATCHES, TEST_BATCH]:
                member = f"{FOLDER}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    raise DataError(f"{path}: has no {member}; expected the official {TARBALL}; {WHERE}") from None
                batches[name] = _read_batch(handle.read(), f"{path}:{member}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .tar.gz ({exc}); expected the official {TARBALL}; {WHERE}") from None
    return batches


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    batches = {}
    for name in [*TRAIN_BATCHES, TEST_BATCH]:
        file = folder / name
        if not file.is_file():
            raise DataError(f"{file}: not found; expected the extracted {FOLDER} folder of {TARBALL}; {WHERE}")
        batches[name] = _read_batch(file.read_bytes(), str(file))
    return batches


def locate(root: Path) -> Path:
    """The tarball or batch folder that ``root`` names or contains."""
    for candidate in (root, root / FOLDER, root / TARBALL):
        if candidate.is_file() and candidate.name.endswith(".tar.gz"):
            return candidate
        if candidate.is_dir() and (candidate / TEST_BATCH).exists():
            return candidate
    raise DataError(f"{root}: found neither {TARBALL} nor an extracted {FOLDER} folder there; {WHERE}")


class Cifar10(ArrayImageDataset):
    """CIFAR-10, 32×32 RGB: 45,000 train / 5,000 validation (the reference's hold-out) / 10,000 test."""

    def __init__(self, settings: Cifar10Settings):
        source = locate(Path(settings.root).expanduser())
        batches = _read_tarball(source, settings.md5) if source.is_file() else _read_folder(source)
        train_all = np.concatenate([batches[name] for name in TRAIN_BATCHES])
        from sklearn.model_selection import train_test_split

        # the reference splits the image array itself; splitting its index gives the same partition
        train, validation = train_test_split(
            np.arange(len(train_all)), test_size=settings.validation_size, random_state=settings.split_seed
        )
        super().__init__(
            {
                "train": ArraySplit(train_all, train),
                "validation": ArraySplit(train_all, validation),
                "test": ArraySplit(batches[TEST_BATCH]),
            }
        )
