"""Data sets stored as ``uint8`` ``.npy`` arrays ``(N, H, W, C)``: ImageNet-32/64 and FFHQ-256 as
openai/vdvae prepares them, and any such array of your own.

Splits follow the reference (Child 2021, code release): ImageNet-32/64 hold 5,000 images out of
the training file after ``np.random.seed(42); permutation``, and use the official validation file
as the test set; FFHQ-256 holds 7,000 out with seed 5 and, like the reference, reports on that
held-out set (it has no separate test set).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from genkit.schema import hub_repo_field, in_range, revision_field, seed_field
from genkit_plugins.datasets.arrays import ArrayImageDataset, ArraySplit, load_npy, seeded_holdout
from genkit_plugins.datasets.sources import check_one_source, data_folder

IMAGENET_WHERE = (
    "genkit cannot fetch downsampled ImageNet (image-net.org asks for a login): sign in at image-net.org, download "
    "the downsampled train and validation images, and convert them as openai/vdvae's setup_imagenet.sh does"
)
NPY_FILES = ("train.npy", "validation.npy", "test.npy")
FFHQ_WHERE = (
    "genkit does not fetch FFHQ-256 (a 13.8 GB file with no published checksum): download it with openai/vdvae's "
    "setup_ffhq256.sh, or make it from the FFHQ images of github.com/NVlabs/ffhq-dataset"
)


@attrs.frozen
class ImageNetSettings:
    """Folder holding ``imagenetR-train.npy`` and ``imagenetR-valid.npy``; how validation is held out of train."""

    root: str = "data/imagenet"
    validation_size: int = attrs.field(default=5000, validator=in_range(1))
    split_seed: int = seed_field(42)


class ImageNet(ArrayImageDataset):
    """Downsampled ImageNet (van den Oord 2016) at ``resolution`` = 32 or 64, from the reference's .npy files."""

    def __init__(self, settings: ImageNetSettings, resolution: int):
        root = Path(settings.root).expanduser()
        shape = (None, resolution, resolution, 3)
        train_all = load_npy(root / f"imagenet{resolution}-train.npy", shape=shape, where=IMAGENET_WHERE)
        test = load_npy(root / f"imagenet{resolution}-valid.npy", shape=shape, where=IMAGENET_WHERE)
        train, validation = seeded_holdout(len(train_all), settings.validation_size, settings.split_seed)
        super().__init__(
            {
                "train": ArraySplit(train_all, train),
                "validation": ArraySplit(train_all, validation),
                "test": ArraySplit(test),
            }
        )


def imagenet32(settings: ImageNetSettings) -> ImageNet:
    """ImageNet 32×32 (reference .npy files): train minus 5,000 / 5,000 held out (seed 42) / official valid as test."""
    return ImageNet(settings, 32)


def imagenet64(settings: ImageNetSettings) -> ImageNet:
    """ImageNet 64×64 (reference .npy files): train minus 5,000 / 5,000 held out (seed 42) / official valid as test."""
    return ImageNet(settings, 64)


@attrs.frozen
class Ffhq256Settings:
    """Folder holding ``ffhq-256.npy``; how validation is held out; the depth the images are modelled at."""

    root: str = "data/ffhq"
    validation_size: int = attrs.field(default=7000, validator=in_range(1))
    split_seed: int = seed_field(5)
    # The file holds 8-bit pixels. The reference models FFHQ-256 at 5 bits by flooring only the
    # loss target (the encoder still sees 8-bit input), so the data set passes pixels through
    # unchanged and only declares the depth.
    bits: int = attrs.field(default=5, validator=in_range(1, 8))


class Ffhq256(ArrayImageDataset):
    """FFHQ 256×256 (Karras 2019) from the reference's ffhq-256.npy: 7,000 held out (seed 5), also used as test."""

    def __init__(self, settings: Ffhq256Settings):
        images = load_npy(
            Path(settings.root).expanduser() / "ffhq-256.npy", shape=(None, 256, 256, 3), where=FFHQ_WHERE
        )
        train, validation = seeded_holdout(len(images), settings.validation_size, settings.split_seed)
        held_out = ArraySplit(images, validation)
        super().__init__(
            {"train": ArraySplit(images, train), "validation": held_out, "test": held_out},
            bits=settings.bits,
            validation_is_test=True,
        )


@attrs.frozen
class NpySettings:
    """Folder (or Hub data-set repo) with ``train.npy`` and ``test.npy`` (and optionally ``validation.npy``),
    all ``uint8`` ``(N, H, W, C)``."""

    root: str = ""
    hub: str = hub_repo_field()  # a Hub data-set repo holding the .npy files, instead of root
    hub_revision: str = revision_field()  # "" = the repo's main branch
    download: bool = True  # false: use the Hub repo only if it is already in the Hugging Face cache
    validation_size: int = attrs.field(
        default=1000, validator=in_range(1)
    )  # held out of train when validation.npy is absent
    split_seed: int = seed_field(0)
    bits: int = attrs.field(default=8, validator=in_range(1, 8))

    def __attrs_post_init__(self) -> None:
        check_one_source(self)


class NpyImages(ArrayImageDataset):
    """Any ``uint8`` image arrays saved with ``numpy.save``: train.npy, test.npy, optional validation.npy."""

    def __init__(self, settings: NpySettings):
        root = data_folder(
            settings.root,
            settings.hub,
            settings.hub_revision,
            download=settings.download,
            patterns=list(NPY_FILES),
            holding="train.npy and test.npy",
        )
        where = "write it with numpy.save(path, images) where images is uint8 (N, H, W, C)"
        train_all = load_npy(root / "train.npy", where=where)
        shape = (None, *train_all.shape[1:])
        test = load_npy(root / "test.npy", shape=shape, where=where)
        if (root / "validation.npy").exists():
            splits = {
                "train": ArraySplit(train_all),
                "validation": ArraySplit(load_npy(root / "validation.npy", shape=shape, where=where)),
            }
        else:
            train, validation = seeded_holdout(len(train_all), settings.validation_size, settings.split_seed)
            splits = {"train": ArraySplit(train_all, train), "validation": ArraySplit(train_all, validation)}
        super().__init__({**splits, "test": ArraySplit(test)}, bits=settings.bits)
