"""Registers the first-party data sets through the same hook a third-party plugin uses."""

from __future__ import annotations

from genkit.hookspecs import hookimpl
from genkit_plugins.datasets import cifar, digits, folders, npy


@hookimpl
def genkit_register_datasets(register):
    # display_name and hub_dataset (the Hub data set of the source images) go on model cards
    register("digits", digits.Digits, config=digits.DigitsSettings, display_name="UCI handwritten digits (8x8)")
    register(
        "cifar10",
        cifar.Cifar10,
        config=cifar.Cifar10Settings,
        # the contract suite must not start a 163 MiB download: it builds from a copy already here, or fails in one line
        example=cifar.Cifar10Settings(download=False),
        display_name="CIFAR-10",
        hub_dataset="uoft-cs/cifar10",
    )
    imagenet = {"config": npy.ImageNetSettings, "hub_dataset": "ILSVRC/imagenet-1k"}
    register("imagenet32", npy.imagenet32, display_name="ImageNet 32x32", **imagenet)
    register("imagenet64", npy.imagenet64, display_name="ImageNet 64x64", **imagenet)
    register("ffhq256", npy.Ffhq256, config=npy.Ffhq256Settings, display_name="FFHQ 256x256 (5 bit)")
    register("ffhq1024", folders.ffhq1024, config=folders.Ffhq1024Settings, display_name="FFHQ 1024x1024")
    register("image-folder", folders.image_folder, config=folders.ImageFolderSettings)
    register("npy", npy.NpyImages, config=npy.NpySettings)
