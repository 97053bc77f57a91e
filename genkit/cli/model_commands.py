"""Commands on a trained model of any family: ``eval`` and ``sample``.

MODEL is a model directory, a run directory (its latest EMA weights) or a Hub repo id, loaded by
:func:`genkit.hub.from_pretrained`.
"""

from __future__ import annotations

import click
import numpy as np
import torch

from genkit.capabilities import LatentVariables, require
from genkit.cli.model_options import (
    Temperature,
    batch_option,
    check_temperature,
    data_split,
    device_option,
    dtype_option,
    generator_for,
    grid_scale,
    images_option,
    latents_option,
    load_model,
    max_images_option,
    model_argument,
    read_images,
    seed_option,
    split_option,
)
from genkit.cli.options import Count, OutputPath, emit_json, json_option, say
from genkit.engine.evaluate import evaluate_dataset, not_finite, per_image_terms
from genkit.errors import ConfigError, DivergedError, printable
from genkit.interfaces import nats_to_bits, resolve_sampler


def require_finite(model_path: str, images: str, figures: dict) -> None:
    """Stop with one line, reporting nothing, when the figures of a model whose weights are finite (loading checked
    them) are not: the model has diverged, and ``bits_per_dim=nan`` would read as a result."""
    problem = not_finite(figures)
    if problem:
        raise DivergedError(
            f"{model_path}: its figures on {images} are not finite ({problem}) although its weights are: "
            "the model has diverged; train it again with a smaller train.lr"
        )


@click.command(name="eval")
@model_argument
@images_option
@split_option
@latents_option
@dtype_option
@device_option
@batch_option
@seed_option
@max_images_option
@click.option(
    "--importance-samples",
    type=Count(0),
    default=0,
    show_default=True,
    help="With --split: K samples per image for the importance-weighted bound (models that have one).",
)
@json_option
def eval_command(
    model_path, images_path, split, latents, dtype, device, batch_size, seed, max_images, importance_samples, json_path
):
    """MODEL's negative log-likelihood, or the bound it reports, in nats and bits per dimension.

    Per image (--images) or averaged over a data split (--split). The figure is what the model's
    objective names: the exact negative log-likelihood, a negative ELBO, a dequantization bound.
    """
    if (images_path is None) == (split is None):
        raise ConfigError("genkit eval: give exactly one of --images FILE.npy or --split NAME")
    model = load_model(model_path, device, dtype)
    if split is not None:
        if latents != "sample":
            raise ConfigError(
                "genkit eval: --latents mean applies to --images; --split evaluates the figure as in training"
            )
        torch.manual_seed(seed)
        dataset = data_split(model, model_path, split)
        result = {
            "split": split,
            **evaluate_dataset(
                model,
                dataset,
                batch_size=batch_size,
                max_images=max_images,
                importance_samples=importance_samples,
                device=device,
            ),
        }
        require_finite(model_path, f"the {split} split", result)
        summary = {k: v for k, v in result.items() if not isinstance(v, list)}
        say("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()), json_path)
    else:
        if importance_samples:
            raise ConfigError("genkit eval: --importance-samples applies to --split")
        images = read_images(images_path, model)
        generator = generator_for(device, seed)
        result = per_image_terms(
            model, images, latents=latents, batch_size=batch_size, device=device, generator=generator
        )
        objective = model.objective
        nll = float(np.mean(result["nll_nats_per_dim"]))
        parts = objective.parts_text(
            {name: nats_to_bits(float(np.mean(result[f"{name}_nats_per_dim"]))) for name in objective.parts}
        )
        require_finite(model_path, images_path, {"bits_per_dim": nats_to_bits(nll)})
        say(
            f"images={len(result['nll_nats_per_dim'])}  objective={objective.label!r}  "
            f"nll_nats_per_dim={nll:.6f}  bits_per_dim={nats_to_bits(nll):.6f}"
            + (f"  ({parts} bits/dim)" if parts else ""),
            json_path,
        )
    if json_path:
        emit_json(json_path, result)


@click.command()
@model_argument
@click.option("--n", type=Count(1), default=64, show_default=True, help="How many images.")
@click.option(
    "--temperature",
    type=Temperature(per_layer=True),
    default="1.0",
    show_default=True,
    help="Scale of the model's noise, or for a model with latent variables one per layer: 1.0,0.9,…",
)
@click.option("--sampler", default=None, help="Which of the model's samplers to use (default: its first).")
@latents_option
@seed_option
@device_option
@click.option("--out", type=OutputPath("image"), required=True, help="PNG grid to write.")
@click.option("--npy", type=OutputPath("npy"), default=None, help="Also save the uint8 images (N, H, W, C).")
def sample(model_path, n, temperature, sampler, latents, seed, device, out, npy):
    """Draw N images from MODEL and save them as one PNG grid."""
    from genkit.images import save_grid

    model = load_model(model_path, device)
    sampler = resolve_sampler(model, sampler)
    check_temperature(model, temperature)
    options = {}
    if latents != "sample":
        require(model, LatentVariables, "--latents mean")
        options["latents"] = latents
    generator = generator_for(device, seed)
    images = model.sample(n, temperature=temperature, generator=generator, sampler=sampler, **options).cpu()
    save_grid(images, out, scale=grid_scale(images))
    if npy:
        np.save(npy, images.numpy())
    click.echo(f"wrote {n} samples ({printable(sampler)} sampler) to {out}")


COMMANDS = [eval_command, sample]
