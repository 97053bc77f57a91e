"""Registers the first-party data sets through the same hook a third-party plugin uses."""

from __future__ import annotations

from genkit.hookspecs import hookimpl
from genkit_plugins.datasets import cifar, digits, folders, npy


@hookimpl
def genkit_register_datasets(register):
    register("digits", digits.Digits, config=digits.DigitsSettings)
    # the contract suite must not start a 163 MiB download: it builds from a copy already there, or fails in one line
    register("cifar10", cifar.Cifar10, config=cifar.Cifar10Settings, example=cifar.Cifar10Settings(download=False))
    register("imagenet32", npy.imagenet32, config=npy.ImageNetSettings)
    register("imagenet64", npy.imagenet64, config=npy.ImageNetSettings)
    register("ffhq256", npy.Ffhq256, config=npy.Ffhq256Settings)
    register("ffhq1024", folders.ffhq1024, config=folders.Ffhq1024Settings)
    register("image-folder", folders.image_folder, config=folders.ImageFolderSettings)
    register("npy", npy.NpyImages, config=npy.NpySettings)
