"""Latents out and back in, on a model that declares :class:`genkit.capabilities.Encodable`: ``encode`` (images to a
latents file), ``decode`` (a latents file to images) and ``interpolate`` (the images between two, through the
latents)."""

from __future__ import annotations

import click
import torch

from genkit.capabilities import Encodable, LatentVariables, require
from genkit.cli.model_commands import drawing
from genkit.cli.model_options import (
    Temperature,
    batch_option,
    check_layer_counts,
    check_temperature,
    device_option,
    dtype_option,
    generator_for,
    grid_option,
    latents_choice,
    load_model,
    model_argument,
    npy_option,
    read_images,
    seed_option,
    write_images,
)
from genkit.cli.options import Count, OutputPath
from genkit.errors import DataError
from genkit.latents import PATHS, concatenate

images_argument = click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="A .npy file of uint8 images (N, H, W, C).",
)


@click.command()
@model_argument
@images_argument
@latents_choice("mean")
@dtype_option
@device_option
@batch_option
@seed_option
@click.option("--out", type=OutputPath("safetensors"), required=True, help="The latents file to write (.safetensors).")
def encode(model_path, images_path, latents, dtype, device, batch_size, seed, out):
    """Write the latents of the images in --images to one safetensors file (--out).

    A hierarchical VAE gives one tensor per latent layer: each layer's posterior mean given the means above it
    (--latents mean), or a draw from each posterior given the draws above (--latents sample). A flow gives its z,
    from which it recovers the images exactly, with the dequantization noise at its mean or drawn. The file's
    metadata names each tensor's layer, resolution and kind, the model's id (the sha256 of its weights) and the
    number of images; genkit decode checks them all.
    """
    from genkit.latentfiles import save_latents

    model = load_model(model_path, device, dtype)
    require(model, Encodable, f"genkit encode {model_path}")
    images = read_images(images_path, model)
    generator = generator_for(device, seed)
    encoded = concatenate(
        [model.encode_latents(batch.to(device), latents, generator) for batch in images.split(batch_size)]
    )
    save_latents(model, encoded, out, source=model_path)
    tensors = f"{len(encoded.tensors)} tensor" + ("s" if len(encoded.tensors) > 1 else "")
    click.echo(f"wrote the latents of {encoded.count} images ({encoded.kind}, {tensors}) to {out}")


@click.command()
@model_argument
@click.argument("latents_path", metavar="LATENTS", type=click.Path(dir_okay=False))
@click.option(
    "--keep",
    type=Count(0),
    default=None,
    help="Models with latent layers: take the first K layers from LATENTS and draw the rest from the prior "
    "(default: every layer).",
)
@click.option(
    "--temperature",
    type=Temperature(per_layer=True),
    default="1.0",
    show_default=True,
    help="Temperature of the layers drawn from the prior, or one per layer: 1.0,0.9,…",
)
@dtype_option
@device_option
@batch_option
@seed_option
@grid_option
@npy_option
def decode(model_path, latents_path, keep, temperature, dtype, device, batch_size, seed, out, npy):
    """Draw images from the latents in LATENTS, a file genkit encode wrote with the same MODEL and --dtype.

    A hierarchical VAE takes the first --keep layers (default: all) from the file, draws the rest from its prior at
    --temperature given them, and draws each image from its likelihood (--seed). A flow inverts its z: decoding
    what genkit encode wrote gives back the very images. Writes what genkit sample writes: a PNG grid and, with
    --npy, the uint8 images.
    """
    from genkit.latentfiles import load_latents

    model = load_model(model_path, device, dtype)
    require(model, Encodable, f"genkit decode {model_path}")
    if keep is not None:
        require(model, LatentVariables, "--keep")
        check_layer_counts(model, [keep], "--keep")
    check_temperature(model, temperature)
    latents = load_latents(model, latents_path)
    generator = generator_for(device, seed)
    with drawing(model, model_path):
        images = torch.cat(
            [model.decode_latents(batch, keep, temperature, generator) for batch in latents.split(batch_size)]
        )
    write_images(images, out, npy)
    kept = "every latent" if keep is None else f"the first {keep} latent layers"
    click.echo(f"wrote {len(images)} images decoded from {kept} of {latents_path} to {out}")


@click.command()
@model_argument
@click.argument("start_path", metavar="A", type=click.Path(dir_okay=False))
@click.argument("end_path", metavar="B", type=click.Path(dir_okay=False))
@click.option("--steps", type=Count(2), default=8, show_default=True, help="Images from A to B, both ends included.")
@click.option(
    "--path",
    type=click.Choice(PATHS),
    default="spherical",
    show_default=True,
    help="The path between the two latents: along the great circle (slerp) or the straight line.",
)
@latents_choice("mean")
@dtype_option
@device_option
@seed_option
@grid_option
@npy_option
def interpolate(model_path, start_path, end_path, steps, path, latents, dtype, device, seed, out, npy):
    """The grid between the images of A and B, through their latents.

    A and B are .npy files of as many uint8 images; row i goes from image i of A to image i of B in --steps images,
    both ends included. Both are encoded (--latents mean: a VAE's posterior means, layer by layer; a flow's z, its
    dequantization noise at its mean), and each latent tensor of each image is interpolated as one vector: along
    the great circle (--path spherical, the slerp of White 2016: between two points of a high-dimensional
    Gaussian's typical shell it stays near the shell, where the straight line cuts through the improbable centre)
    or along the straight line (--path linear). Every point is decoded with all its latents given. Writes a PNG
    grid, a row per pair, and with --npy the uint8 images row by row.
    """
    model = load_model(model_path, device, dtype)
    require(model, Encodable, f"genkit interpolate {model_path}")
    start, end = read_images(start_path, model), read_images(end_path, model)
    if len(start) != len(end):
        raise DataError(
            f"{end_path}: holds {len(end)} image{'s' * (len(end) != 1)} and {start_path} {len(start)}; row i of the "
            "grid goes from image i of A to image i of B, so both need as many"
        )
    generator = generator_for(device, seed)
    with drawing(model, model_path):
        images = model.interpolate(
            start.to(device), end.to(device), steps, path=path, latents=latents, generator=generator
        )
    write_images(images, out, npy, nrow=steps)
    click.echo(f"wrote {len(start)} rows × {steps} images ({path} interpolation of the latents) to {out}")


COMMANDS = [encode, decode, interpolate]
