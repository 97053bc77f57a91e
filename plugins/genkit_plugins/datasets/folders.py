"""Data sets read from folders of image files (PNG, JPEG, …), decoded one image per item.

Decoding happens in the data loader's worker processes, so a folder of large images (FFHQ-1024)
is read in parallel with training. Every image must have the data set's size: a file of the
wrong size fails with a line naming it rather than being silently resized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from genkit.errors import ConfigError, DataError
from genkit.interfaces import ImageDataset
from genkit.schema import hub_repo_field, in_range, revision_field, seed_field
from genkit_plugins.datasets.arrays import SPLITS, seeded_holdout
from genkit_plugins.datasets.sources import check_one_source, data_folder

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "valid", "val"), "test": ("test",)}


def list_images(folder: Path, where: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; expected a folder of image files ({where})")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{folder}: holds no image files ({', '.join(sorted(EXTENSIONS))}) ({where})")
    return files


def read_image(path: Path, mode: str, where: str) -> np.ndarray:
    """``(H, W, C)`` ``uint8`` in ``mode`` ("RGB" or "L")."""
    try:
        with Image.open(path) as picture:
            array = np.asarray(picture.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); {where}") from None
    return array[..., None] if array.ndim == 2 else array


class ImageFiles(Dataset):
    """A list of image files, each decoded on access and checked against ``image_shape``."""

    def __init__(self, files: list[Path], image_shape: tuple[int, int, int], where: str):
        self.files, self.image_shape, self.where = files, image_shape, where
        self.mode = "L" if image_shape[2] == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        array = read_image(self.files[i], self.mode, self.where)
        if array.shape != self.image_shape:
            raise DataError(
                f"{self.files[i]}: image is {array.shape[1]}×{array.shape[0]}, "
                f"expected {self.image_shape[1]}×{self.image_shape[0]} like the rest of the data set ({self.where})"
            )
        return torch.from_numpy(array.copy())


class FolderDataset(ImageDataset):
    def __init__(self, splits: dict[str, ImageFiles], bits: int = 8, *, validation_is_test: bool = False):
        self._splits, self.bits, self.validation_is_test = splits, bits, validation_is_test
        self.image_shape = splits["train"].image_shape

    def split(self, name: str) -> ImageFiles:
        if name not in self._splits:
            raise ConfigError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self._splits[name]


@attrs.frozen
class ImageFolderSettings:
    """A folder (or Hub data-set repo) of images: with train/ (validation/ or valid/, test/) subfolders, or flat."""

    root: str = ""
    hub: str = hub_repo_field()  # a Hub data-set repo holding the images, instead of root
    hub_revision: str = revision_field()  # "" = the repo's main branch
    download: bool = True  # false: use the Hub repo only if it is already in the Hugging Face cache
    channels: Literal[1, 3] = 3
    validation_fraction: float = attrs.field(default=0.05, validator=in_range(0, 1, low_open=True, high_open=True))
    test_fraction: float = attrs.field(default=0.05, validator=in_range(0, 1, low_open=True, high_open=True))
    split_seed: int = seed_field(0)

    def __attrs_post_init__(self) -> None:
        check_one_source(self)


def image_folder(settings: ImageFolderSettings) -> FolderDataset:
    """Any folder of same-sized images; subfolders train/validation/test are used as the splits when present."""
    root = data_folder(
        settings.root,
        settings.hub,
        settings.hub_revision,
        download=settings.download,
        patterns=[f"*{case(extension)}" for extension in sorted(EXTENSIONS) for case in (str.lower, str.upper)],
        holding="same-sized images",
    )
    where = "point data.root at a folder of same-sized images"
    found = {
        split: next((root / f for f in folders if (root / f).is_dir()), None)
        for split, folders in SPLIT_FOLDERS.items()
    }
    if found["train"] is not None:
        files = {"train": list_images(found["train"], where)}
        for split in ("validation", "test"):
            if found[split] is None:
                raise DataError(
                    f"{root}: has train/ but no {SPLIT_FOLDERS[split][0]}/ folder; expected both beside it ({where})"
                )
            files[split] = list_images(found[split], where)
    else:
        every = list_images(root, where)
        n = len(every)
        n_test = max(1, round(settings.test_fraction * n))
        n_validation = max(1, round(settings.validation_fraction * n))
        if n_test + n_validation >= n:
            raise DataError(
                f"{root}: {n} images are too few to hold out {n_validation} for validation and {n_test} for test "
                f"({where})"
            )
        rest, test = seeded_holdout(n, n_test, settings.split_seed)
        train, validation = rest[:-n_validation], rest[-n_validation:]
        files = {
            "train": [every[i] for i in train],
            "validation": [every[i] for i in validation],
            "test": [every[i] for i in test],
        }
    h, w, c = read_image(files["train"][0], "L" if settings.channels == 1 else "RGB", where).shape
    return FolderDataset({split: ImageFiles(paths, (h, w, c), where) for split, paths in files.items()})


@attrs.frozen
class Ffhq1024Settings:
    """Folder holding train/ and valid/ subfolders of 1024×1024 FFHQ PNGs."""

    root: str = "data/ffhq1024"


def ffhq1024(settings: Ffhq1024Settings) -> FolderDataset:
    """FFHQ 1024×1024 (Karras 2019) from train/ and valid/ image folders; like the reference, valid is also \
the test set."""
    root = Path(settings.root).expanduser()
    where = (
        "genkit cannot fetch FFHQ (its Google Drive copy refuses downloads once a daily quota is used): download "
        "images1024x1024 as github.com/NVlabs/ffhq-dataset explains, then split it with openai/vdvae's "
        "setup_ffhq1024.sh"
    )
    shape = (1024, 1024, 3)
    train = ImageFiles(list_images(root / "train", where), shape, where)
    valid = ImageFiles(list_images(root / "valid", where), shape, where)
    return FolderDataset({"train": train, "validation": valid, "test": valid}, validation_is_test=True)
