"""Commands on a model with latent variables: ``reconstruct`` (how much of an image each depth of latents carries)
and ``rates`` (what every latent layer costs)."""

from __future__ import annotations

import math

import click
import numpy as np
import torch

from genkit.capabilities import LatentVariables, kept_layer_counts, require
from genkit.cli.model_commands import drawing, require_finite
from genkit.cli.model_options import (
    LayerCounts,
    Temperature,
    batch_option,
    check_layer_counts,
    data_split,
    device_option,
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
from genkit.engine.evaluate import evaluate_dataset, per_image_terms
from genkit.errors import ConfigError
from genkit.interfaces import nats_to_bits


@click.command()
@model_argument
@click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="A .npy file of uint8 images (N, H, W, C).",
)
@click.option("--n", type=Count(1), default=6, show_default=True, help="How many of the images (rows).")
@click.option(
    "--keep",
    type=LayerCounts(),
    default=None,
    help="Comma-separated numbers of posterior layers per column (default: 1, 2, 4, … and every layer).",
)
@click.option(
    "--temperature",
    type=Temperature(),
    default=0.1,
    show_default=True,
    help="Temperature of the layers drawn from the prior (≥ 0).",
)
@seed_option
@device_option
@click.option("--out", type=OutputPath("image"), required=True, help="PNG grid to write.")
def reconstruct(model_path, images_path, n, keep, temperature, seed, device, out):
    """Each row an image, then its reconstructions keeping its first k latent layers from the posterior and drawing
    the rest from the prior."""
    from genkit.images import save_grid

    model = load_model(model_path, device)
    require(model, LatentVariables, f"genkit reconstruct {model_path}")
    images = read_images(images_path, model)[:n].to(device)
    if keep is None:
        ks = kept_layer_counts(model.n_latent_layers)
    else:
        check_layer_counts(model, keep, "--keep")
        ks = keep
    generator = generator_for(device, seed)
    with drawing(model, model_path):
        grid, columns = model.reconstruction_grid(images, ks, temperature=temperature, generator=generator)
    save_grid(grid.cpu(), out, nrow=columns, scale=grid_scale(grid))
    click.echo(f"wrote {len(images)} rows × (original + k = {','.join(map(str, ks))}) to {out}")


@click.command()
@model_argument
@images_option
@split_option
@max_images_option
@latents_option
@batch_option
@seed_option
@device_option
@click.option("--plot", type=OutputPath("plot"), default=None, help="PNG plot of the rate of every layer.")
@json_option
def rates(model_path, images_path, split, max_images, latents, batch_size, seed, device, plot, json_path):
    """The rate (KL) of every latent layer in bits per dimension, as a table and a plot."""
    if (images_path is None) == (split is None):
        raise ConfigError("genkit rates: give exactly one of --images FILE.npy or --split NAME")
    model = load_model(model_path, device)
    require(model, LatentVariables, f"genkit rates {model_path}")
    dims = math.prod(model.image_shape)
    if split is not None:
        torch.manual_seed(seed)
        dataset = data_split(model, model_path, split)
        per_layer = evaluate_dataset(
            model, dataset, batch_size=batch_size, max_images=max_images, seed=seed, device=device
        ).get("layer_rate_bits_per_dim")
    else:
        images = read_images(images_path, model)
        generator = generator_for(device, seed)
        terms = per_image_terms(
            model, images, latents=latents, batch_size=batch_size, device=device, generator=generator
        )
        layer_kl = terms.get("kl_nats_per_layer")
        per_layer = None if layer_kl is None else nats_to_bits(np.mean(layer_kl, axis=0) / dims).tolist()
    if not per_layer:
        raise ConfigError(f"{model_path}: the model reports no per-layer KL, so it has no per-layer rates")
    resolutions = model.layer_resolutions
    total = sum(per_layer)
    require_finite(model, model_path, images_path or f"the {split} split", {"rate_bits_per_dim": total})
    table = [
        {"layer": i, "resolution": r, "bits_per_dim": b, "share": b / total if total > 0 else 0.0}
        for i, (r, b) in enumerate(zip(resolutions, per_layer))
    ]
    say(f"{'layer':>5}  {'res':>5}  {'bits/dim':>12}  {'share':>7}", json_path)
    for row in table:
        say(
            f"{row['layer']:>5}  {row['resolution'] or '':>5}  {row['bits_per_dim']:>12.6f}  "
            f"{100 * row['share']:>6.2f}%",
            json_path,
        )
    say(f"{'total':>5}  {'':>5}  {total:>12.6f}", json_path)
    if plot:
        plot_rates(table, plot)
    if json_path:
        emit_json(json_path, {"layers": table, "rate_bits_per_dim": total})


def plot_rates(table: list[dict], path: str) -> None:
    """Bars of every layer's rate, coloured by resolution, top layer first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from genkit.images import save_plot

    resolutions = sorted({row["resolution"] for row in table if row["resolution"] is not None})
    colours = {r: plt.cm.viridis(i / max(1, len(resolutions) - 1)) for i, r in enumerate(resolutions)}
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(table)), 3.5))
    for row in table:
        ax.bar(row["layer"], row["bits_per_dim"], color=colours.get(row["resolution"], "grey"))
    ax.set_xlabel("latent layer (top first)")
    ax.set_ylabel("rate (bits/dim)")
    if resolutions:
        # explicit swatches: an empty bar() has no patch to take its colour from
        handles = [Patch(color=colours[r], label=f"{r}×{r}") for r in resolutions]
        ax.legend(handles=handles, title="resolution", fontsize="small", ncol=2)
    fig.tight_layout()
    save_plot(fig, path)
    plt.close(fig)


COMMANDS = [reconstruct, rates]
