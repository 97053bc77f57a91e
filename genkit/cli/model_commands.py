"""Commands on a trained model of any family: ``eval`` and ``sample``.

MODEL is a model directory, a run directory (its latest EMA weights) or a Hub repo id, loaded by
:func:`genkit.hub.from_pretrained`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
    grid_option,
    images_option,
    latents_option,
    load_model,
    max_images_option,
    model_argument,
    npy_option,
    read_images,
    seed_option,
    split_option,
    write_images,
)
from genkit.cli.options import Count, emit_json, json_option, say
from genkit.engine.distributed import processes
from genkit.engine.evaluate import evaluate_dataset, not_finite, per_image_terms
from genkit.engine.fid import inception_network, model_fid
from genkit.errors import ConfigError, DivergedError, printable
from genkit.interfaces import nats_to_bits, resolve_sampler


def require_finite(model, model_path: str, images: str, figures: dict) -> None:
    """Stop with one line, reporting nothing, when the figures of a model whose weights are finite (loading checked
    them) are not: ``bits_per_dim=nan`` would read as a result."""
    problem = not_finite(figures)
    if problem:
        raise DivergedError(
            f"{model_path}: its figures on {images} are not finite ({problem}) although its weights are; "
            + history(model)
        )


@contextlib.contextmanager
def drawing(model, model_path: str) -> Iterator[None]:
    """Around drawing images from ``model``: outputs that are not finite (they would be drawn as black pixels) stop
    the command in one line, before anything is written."""
    try:
        yield
    except DivergedError as exc:
        raise DivergedError(
            f"{model_path}: no image drawn, nothing written: {exc} although its weights are finite; {history(model)}"
        ) from None


def history(model) -> str:
    """What the model's directory records of its training, and so what may have made its outputs overflow."""
    provenance = model.provenance or {}
    step = provenance.get("step")
    if isinstance(step, int) and not isinstance(step, bool):
        return (
            f"the model has diverged in training ({step} steps): train it again with a smaller train.lr, "
            "or use an earlier checkpoint"
        )
    if "converted_from" in provenance:
        return (
            f"its weights were converted from {str(provenance['converted_from'])!r} and never trained by genkit: "
            "check that the recipe describes the model that file holds"
        )
    return "its config.json records no training (no step), so no learning rate is to blame: it overflows as saved"


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
@click.option(
    "--fid",
    "fid_images",
    type=Count(2),
    default=None,
    metavar="N",
    help="Also the FID of N samples against the first N images of the split (or of --images), through "
    "torch-fidelity's Inception-v3 pool features.",
)
@click.option(
    "--fid-features",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="A local copy of torch-fidelity's Inception-v3 weights (default: torch's cache).",
)
@json_option
def eval_command(
    model_path,
    images_path,
    split,
    latents,
    dtype,
    device,
    batch_size,
    seed,
    max_images,
    importance_samples,
    fid_images,
    fid_features,
    json_path,
):
    """MODEL's negative log-likelihood, or the bound it reports, in nats and bits per dimension.

    Per image (--images) or averaged over a data split (--split). The figure is what the model's
    objective names: the exact negative log-likelihood, a negative ELBO, a dequantization bound.

    With --fid N, also the Fréchet Inception Distance between N samples (the default sampler at temperature 1,
    --seed) and the first N images of the split or of --images: the distance between Gaussians fitted to their
    2048-d Inception-v3 pool features, from torch-fidelity (pip install --no-deps torch-fidelity), whose network
    resizes the images to 299x299 itself (greyscale goes in as three equal channels). Its weights come from torch's
    cache, downloaded there on first use, or from --fid-features. FID is biased upwards at small N: compare figures
    only at the same N, and below 10,000 images never with the 50,000-sample FIDs of papers.
    """
    if (images_path is None) == (split is None):
        raise ConfigError("genkit eval: give exactly one of --images FILE.npy or --split NAME")
    if fid_features is not None and fid_images is None:
        raise ConfigError("genkit eval: --fid-features applies to --fid N")
    if split is not None and latents != "sample":
        raise ConfigError(
            "genkit eval: --latents mean applies to --images; --split evaluates the figure as in training"
        )
    if split is None and importance_samples:
        raise ConfigError("genkit eval: --importance-samples applies to --split")
    with processes(device) as context:  # one process, or every rank that torchrun started
        device = str(context.device)
        model = load_model(model_path, device, dtype)
        if fid_images is not None:  # what FID needs is checked before the likelihood's long evaluation
            network = inception_network(fid_features, device)
            reference = first_images(model, images_path, split, fid_images)
        if split is not None:
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
                    seed=seed,
                    context=context,
                    progress=context.is_main,
                ),
            }
        else:
            result = per_image_terms(
                model,
                read_images(images_path, model),
                latents=latents,
                batch_size=batch_size,
                device=device,
                generator=generator_for(device, seed),
            )
        if not context.is_main:  # rank 0 reports for every rank
            return
    if split is not None:
        require_finite(model, model_path, f"the {split} split", result)
        summary = {k: v for k, v in result.items() if not isinstance(v, list)}
        say("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()), json_path)
    else:
        objective = model.objective
        nll = float(np.mean(result["nll_nats_per_dim"]))
        parts = objective.parts_text(
            {name: nats_to_bits(float(np.mean(result[f"{name}_nats_per_dim"]))) for name in objective.parts}
        )
        require_finite(model, model_path, images_path, {"bits_per_dim": nats_to_bits(nll)})
        say(
            f"images={len(result['nll_nats_per_dim'])}  objective={objective.label!r}  "
            f"nll_nats_per_dim={nll:.6f}  bits_per_dim={nats_to_bits(nll):.6f}"
            + (f"  ({parts} bits/dim)" if parts else ""),
            json_path,
        )
    if fid_images is not None:
        where = images_path or f"the {split} split"
        result.update(
            model_fid(
                model,
                reference,
                network,
                batch_size=batch_size,
                device=device,
                generator=generator_for(device, seed),
            )
        )
        say(f"fid={result['fid']:.4f}  ({fid_images} samples against {fid_images} images of {where})", json_path)
    if json_path:
        emit_json(json_path, result)


def first_images(model, images_path: str | None, split: str | None, n: int) -> torch.Tensor:
    """The first ``n`` images of ``--images`` or of the recipe's ``split``, or one line saying there are fewer."""
    if images_path is not None:
        images, where = read_images(images_path, model), images_path
    else:
        dataset, where = model.recipe.data.build("dataset").split(split), f"the {split} split"
        images = torch.stack([dataset[i] for i in range(min(n, len(dataset)))])
    if len(images) < n:
        raise ConfigError(f"--fid {n}: {where} holds {len(images)} images; give at most that many")
    return images[:n]


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
@grid_option
@npy_option
def sample(model_path, n, temperature, sampler, latents, seed, device, out, npy):
    """Draw N images from MODEL and save them as one PNG grid."""
    model = load_model(model_path, device)
    sampler = resolve_sampler(model, sampler)
    check_temperature(model, temperature)
    options = {}
    if latents != "sample":
        require(model, LatentVariables, "--latents mean")
        options["latents"] = latents
    generator = generator_for(device, seed)
    with drawing(model, model_path):
        images = model.sample(n, temperature=temperature, generator=generator, sampler=sampler, **options)
    write_images(images, out, npy)
    click.echo(f"wrote {n} samples ({printable(sampler)} sampler) to {out}")


COMMANDS = [eval_command, sample]
