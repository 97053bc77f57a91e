"""CIFAR-10 (Krizhevsky 2009) from the official python release, split as openai/vdvae splits it.

The release is ``cifar-10-python.tar.gz`` (170,498,071 bytes, MD5 c58f30108f718f92721af3b95e74349a):
five training batches and one test batch, each a pickled dict whose ``b"data"`` is ``(10000, 3072)``
``uint8`` in channel-major order. ``root`` may be the tarball, the folder holding it, or the
extracted ``cifar-10-batches-py`` folder (or its parent); left empty, it is ``cifar10/`` in the
genkit cache. When no copy is there the tarball is fetched from ``url`` into that place, checked
against ``md5`` before it is kept (see :mod:`genkit.downloads`). ``hub`` names a Hub data-set repo
holding the tarball or the extracted folder instead.

The reference holds out 5,000 training images with
``sklearn.model_selection.train_test_split(test_size=5000, random_state=11172018)``; we take the
same indices, so "validation" here is the reference's validation set image for image.
``validation_size = 0`` holds nothing out: all 50,000 images train and the validation split is the
test set (how PixelCNN++ and Flow++ report CIFAR-10), which the data set declares.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import attrs
import numpy as np
from einops import rearrange

from genkit.downloads import cache_dir, drop_hint, fetch, md5sum
from genkit.errors import DataError
from genkit.schema import checksum_field, hub_repo_field, in_range, revision_field, seed_field, url_field
from genkit_plugins.datasets.arrays import ArrayImageDataset, ArraySplit
from genkit_plugins.datasets.sources import check_one_source, hub_folder, why_not_downloading

TARBALL = "cifar-10-python.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_SIZE = 170_498_071  # bytes, of the file with OFFICIAL_MD5: a download stops there
FOLDER = "cifar-10-batches-py"
CACHE_FOLDER = "cifar10"  # under the genkit cache
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
WHERE = "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
REFERENCE_SPLIT_SEED = 11172018


@attrs.frozen
class Cifar10Settings:
    """Where the CIFAR-10 files are (or come from), and how validation is held out of the 50,000 training images."""

    root: str = ""  # a local copy; "" = cifar10/ in the genkit cache ($GENKIT_CACHE, else ~/.cache/genkit)
    url: str = url_field(OFFICIAL_URL)  # fetched from here into root when no copy is there
    # of the tarball; "" skips the check (the extracted folder is never checksummed)
    md5: str = checksum_field(OFFICIAL_MD5, algorithm="MD5", digits=32)
    download: bool = True  # false: never fetch (nor does HF_HUB_OFFLINE=1)
    hub: str = hub_repo_field()  # a Hub data-set repo holding the tarball or the extracted folder, instead of root
    hub_revision: str = revision_field()  # "" = the repo's main branch
    validation_size: int = attrs.field(default=5000, validator=in_range(0))  # 0: validation is the test set
    split_seed: int = seed_field(REFERENCE_SPLIT_SEED)

    def __attrs_post_init__(self) -> None:
        check_one_source(self)


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


def _read_batch(data: bytes, source: str, where: str = f"; {WHERE}") -> np.ndarray:
    """One batch as ``(N, 32, 32, 3)`` ``uint8``; ``where`` ends every error (what to do about it)."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
        values = np.asarray(batch[b"data"])
    except Exception as exc:  # any damage in a pickle surfaces as a different exception type
        raise DataError(f"{source}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc}){where}") from None
    if values.ndim != 2 or values.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: batch data has shape {values.shape}, expected (N, 3072){where}")
    # the release holds uint8; anything else is read only if every value is a pixel's (a cast would wrap 256 to 0)
    if values.dtype != np.uint8:
        numeric = values.dtype.kind in "iuf" and values.size > 0
        pixels = numeric and bool(
            np.isfinite(values).all()
            and values.min() >= 0
            and values.max() <= 255
            and (values == np.round(values)).all()
        )
        if not pixels:
            found = (
                f"{values.dtype} values from {values.min()} to {values.max()}" if numeric else f"{values.dtype} values"
            )
            raise DataError(
                f"{source}: batch data holds {found}, expected the pixels 0 … 255 of the official release{where}"
            )
    return rearrange(values.astype(np.uint8), "n (c h w) -> n h w c", c=3, h=32, w=32)


def _read_tarball(path: Path, md5: str) -> dict[str, np.ndarray]:
    where = drop_hint(path) or f"; {WHERE}"  # genkit's own download: say so, and how to have it fetched again
    if md5:
        found = md5sum(path)
        if found != md5:
            raise DataError(
                f"{path}: MD5 is {found}, expected {md5} (the file is incomplete or not the official release){where}"
            )
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in [*TRAIN_BATCHES, TEST_BATCH]:
                member = f"{FOLDER}/{name}"
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise DataError(f"{path}: has no {member}; expected the official {TARBALL}{where}") from None
                if not info.isfile():  # a link would be followed to another member, a device or folder has no bytes
                    raise DataError(
                        f"{path}: {member} is {_member_kind(info)}, not a regular file; expected the official "
                        f"{TARBALL}{where}"
                    )
                batches[name] = _read_batch(tar.extractfile(info).read(), f"{path}:{member}", where)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .tar.gz ({exc}); expected the official {TARBALL}{where}") from None
    return batches


def _member_kind(info: tarfile.TarInfo) -> str:
    if info.issym() or info.islnk():
        return f"a link to {info.linkname!r}"
    if info.isdir():
        return "a folder"
    if info.isfifo():
        return "a FIFO"
    return "a device" if info.isdev() else "not a file"


def _read_folder(folder: Path) -> dict[str, np.ndarray]:
    batches = {}
    for name in [*TRAIN_BATCHES, TEST_BATCH]:
        file = folder / name
        if file.exists() and not file.is_file():
            raise DataError(f"{file}: not a regular file; expected the extracted {FOLDER} folder of {TARBALL}; {WHERE}")
        if not file.is_file():
            raise DataError(f"{file}: not found; expected the extracted {FOLDER} folder of {TARBALL}; {WHERE}")
        batches[name] = _read_batch(file.read_bytes(), str(file))
    return batches


def find(root: Path) -> Path | None:
    """The tarball or batch folder that ``root`` names or contains, if there is one."""
    for candidate in (root, root / FOLDER, root / TARBALL):
        if candidate.is_file() and candidate.name.endswith(".tar.gz"):
            return candidate
        if candidate.is_dir() and (candidate / TEST_BATCH).exists():
            return candidate
    return None


def locate(settings: Cifar10Settings) -> tuple[Path, bool]:
    """(the tarball or batch folder to read, whether it still needs its MD5 checked), fetching it if allowed."""
    if settings.hub:
        folder = hub_folder(
            settings.hub, settings.hub_revision, patterns=[TARBALL, f"{FOLDER}/*"], download=settings.download
        )
        found = find(folder)
        if found is None:
            raise DataError(
                f"{settings.hub}: the Hub data-set repo holds neither {TARBALL} nor an extracted {FOLDER}/ folder "
                f"(genkit reads the official python release, not Parquet conversions)"
            )
        return found, True
    root = Path(settings.root).expanduser() if settings.root else cache_dir() / CACHE_FOLDER
    found = find(root)
    if found is not None:
        return found, True
    off = why_not_downloading(settings.download)
    if off:
        raise DataError(
            f"{root}: found neither {TARBALL} nor an extracted {FOLDER} folder there, and downloads are off ({off}); "
            f"{WHERE}"
        )
    target = root if root.name.endswith(".tar.gz") else root / TARBALL
    size = OFFICIAL_SIZE if settings.md5 == OFFICIAL_MD5 else None  # the official file's length is known
    return fetch(settings.url, target, md5=settings.md5, size=size, hint=f"; or {WHERE} and set data.root to it"), False


class Cifar10(ArrayImageDataset):
    """CIFAR-10, 32×32 RGB: 45,000 train / 5,000 validation (the reference's hold-out) / 10,000 test.

    With ``validation_size = 0``: 50,000 train, and the 10,000 test images serve as validation too.
    """

    def __init__(self, settings: Cifar10Settings):
        source, needs_check = locate(settings)
        md5 = settings.md5 if needs_check else ""  # a fresh download was checked before it was kept
        batches = _read_tarball(source, md5) if source.is_file() else _read_folder(source)
        train_all = np.concatenate([batches[name] for name in TRAIN_BATCHES])
        test = ArraySplit(batches[TEST_BATCH])
        if settings.validation_size == 0:
            super().__init__(
                {"train": ArraySplit(train_all), "validation": test, "test": test}, validation_is_test=True
            )
            return
        if settings.validation_size >= len(train_all):
            raise DataError(
                f"{source}: cannot hold out {settings.validation_size} of only {len(train_all)} training images "
                "for validation (data.validation_size)"
            )
        from sklearn.model_selection import train_test_split

        # the reference splits the image array itself; splitting its index gives the same partition
        train, validation = train_test_split(
            np.arange(len(train_all)), test_size=settings.validation_size, random_state=settings.split_seed
        )
        super().__init__(
            {"train": ArraySplit(train_all, train), "validation": ArraySplit(train_all, validation), "test": test}
        )
