"""Commands on a trained model: ``eval``, ``sample``, ``reconstruct`` (VDVAE Figure 4) and ``rates`` (Figure 5).

MODEL is a model directory, a run directory (its latest EMA weights) or a Hub repo id, loaded by
:func:`genkit.pretrained.from_pretrained`.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import torch

from genkit.cli.options import write_json
from genkit.errors import ConfigError, DataError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LN2 = math.log(2.0)

model_argument = click.argument("model_path", metavar="MODEL")
device_option = click.option("--device", default="cpu", show_default=True, help="Where to run: cpu, cuda, cuda:1…")
dtype_option = click.option(
    "--dtype",
    type=click.Choice(list(DTYPES)),
    default="float32",
    show_default=True,
    help="Precision of weights and arithmetic.",
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw.")
batch_option = click.option(
    "--batch-size", type=click.IntRange(1), default=16, show_default=True, help="Images per forward pass."
)
latents_option = click.option(
    "--latents",
    type=click.Choice(["sample", "mean"]),
    default="sample",
    show_default=True,
    help="'sample' draws every latent as in training; 'mean' puts each at its mean (deterministic).",
)


def load_model(path: str, device: str, dtype: str = "float32") -> torch.nn.Module:
    from genkit.pretrained import from_pretrained

    return from_pretrained(path, device=device, dtype=DTYPES[dtype])


def read_images(path: str, model: torch.nn.Module) -> torch.Tensor:
    """A ``.npy`` file of ``uint8`` images ``(N, H, W, C)`` matching the model's image shape."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: images file not found") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    shape = tuple(model.image_shape)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != shape:
        raise DataError(
            f"{path}: expected uint8 images of shape (N, {', '.join(map(str, shape))}), "
            f"found {array.dtype} {array.shape}"
        )
    if len(array) == 0:
        raise DataError(f"{path}: holds no images")
    return torch.from_numpy(array)


def parse_temperature(text: str) -> float | list[float]:
    """``0.9`` or one value per latent layer, ``1.0,0.9,0.8,…``."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--temperature {text!r}: expected a number or comma-separated numbers (one per latent layer)"
        ) from None
    return values[0] if len(values) == 1 else values


def generator_for(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


@torch.no_grad()
def per_image_terms(model, images: torch.Tensor, *, latents: str, batch_size: int, device: str, seed: int) -> dict:
    """Every image's distortion, rate and negative ELBO (nats/dim), and every layer's KL (nats)."""
    generator = generator_for(device, seed)
    out: dict[str, list] = {
        "distortion_nats_per_dim": [],
        "rate_nats_per_dim": [],
        "elbo_nats_per_dim": [],
        "kl_nats_per_layer": [],
    }
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        terms = (
            model(batch, latents=latents, generator=generator)
            if latents != "sample" or _takes_generator(model)
            else model(batch)
        )
        out["distortion_nats_per_dim"] += terms.distortion.double().tolist()
        out["rate_nats_per_dim"] += terms.rate.double().tolist()
        out["elbo_nats_per_dim"] += terms.elbo.double().tolist()
        if terms.layer_kl is not None:
            out["kl_nats_per_layer"] += terms.layer_kl.double().tolist()
    if not out["kl_nats_per_layer"]:
        del out["kl_nats_per_layer"]
    return out


def _takes_generator(model) -> bool:
    import inspect

    return "generator" in inspect.signature(model.forward).parameters


@click.command(name="eval")
@model_argument
@click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A .npy file of uint8 images (N, H, W, C): per-image results.",
)
@click.option(
    "--split",
    type=click.Choice(["train", "validation", "test"]),
    default=None,
    help="Evaluate the recipe's data set split instead.",
)
@latents_option
@dtype_option
@device_option
@batch_option
@seed_option
@click.option("--max-images", type=click.IntRange(1), default=None, help="With --split: only the first N images.")
@click.option(
    "--importance-samples",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="With --split: K samples for the importance-weighted bound.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the results as JSON.")
def eval_command(
    model_path, images_path, split, latents, dtype, device, batch_size, seed, max_images, importance_samples, json_path
):
    """Negative ELBO of MODEL in nats and bits per dimension: per image (--images) or over a data split (--split)."""
    if (images_path is None) == (split is None):
        raise ConfigError("genkit eval: give exactly one of --images FILE.npy or --split NAME")
    model = load_model(model_path, device, dtype)
    if split is not None:
        if latents != "sample":
            raise ConfigError(
                "genkit eval: --latents mean applies to --images; --split evaluates the ELBO as in training"
            )
        from genkit.evaluate import evaluate_dataset

        torch.manual_seed(seed)
        dataset = model.recipe.data.build("dataset").split(split)
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
        summary = {k: v for k, v in result.items() if not isinstance(v, list)}
        click.echo("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    else:
        result = per_image_terms(
            model, read_images(images_path, model), latents=latents, batch_size=batch_size, device=device, seed=seed
        )
        elbo = float(np.mean(result["elbo_nats_per_dim"]))
        click.echo(
            f"images={len(result['elbo_nats_per_dim'])}  elbo_nats_per_dim={elbo:.6f}  bits_per_dim={elbo / LN2:.6f}"
        )
    if json_path:
        write_json(json_path, result)


@click.command()
@model_argument
@click.option("--n", type=click.IntRange(1), default=64, show_default=True, help="How many images.")
@click.option(
    "--temperature", default="1.0", show_default=True, help="Prior temperature, or one per latent layer: 1.0,0.9,…"
)
@latents_option
@seed_option
@device_option
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG grid to write.")
@click.option("--npy", type=click.Path(dir_okay=False), default=None, help="Also save the uint8 images (N, H, W, C).")
def sample(model_path, n, temperature, latents, seed, device, out, npy):
    """Draw N images from MODEL and save them as one PNG grid."""
    from genkit.images import save_grid

    model = load_model(model_path, device)
    generator = generator_for(device, seed)
    kwargs = {"latents": latents} if latents != "sample" else {}
    images = model.sample(n, temperature=parse_temperature(temperature), generator=generator, **kwargs).cpu()
    save_grid(images, out, scale=_scale(images))
    if npy:
        np.save(npy, images.numpy())
    click.echo(f"wrote {n} samples to {out}")


@click.command()
@model_argument
@click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="A .npy file of uint8 images (N, H, W, C).",
)
@click.option("--n", type=click.IntRange(1), default=6, show_default=True, help="How many of the images (rows).")
@click.option(
    "--keep",
    default=None,
    help="Comma-separated numbers of posterior layers per column (default: a spread from 0 to all).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(0),
    default=0.1,
    show_default=True,
    help="Temperature of the layers drawn from the prior.",
)
@seed_option
@device_option
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG grid to write.")
def reconstruct(model_path, images_path, n, keep, temperature, seed, device, out):
    """The paper's Figure 4: each row an image, then decodings keeping its first k latent layers from the posterior."""
    from genkit.images import save_grid

    model = load_model(model_path, device)
    if not hasattr(model, "reconstruct"):
        raise ConfigError(f"{model_path}: a {type(model).__name__} has no latent layers to reconstruct from")
    images = read_images(images_path, model)[:n].to(device)
    layers = model.n_latent_layers
    if keep is None:
        ks = sorted({0, 1, 2, *(round(layers * f) for f in (0.1, 0.25, 0.5, 0.75)), layers})
    else:
        try:
            ks = [int(k) for k in keep.split(",")]
        except ValueError:
            raise ConfigError(f"--keep {keep!r}: expected comma-separated integers") from None
    generator = generator_for(device, seed)
    columns = [images] + [model.reconstruct(images, k, temperature=temperature, generator=generator) for k in ks]
    grid = torch.stack(columns, dim=1).flatten(0, 1).cpu()  # row-major: image, then its reconstructions
    save_grid(grid, out, nrow=len(columns), scale=_scale(grid))
    click.echo(f"wrote {len(images)} rows × (original + k = {','.join(map(str, ks))}) to {out}")


@click.command()
@model_argument
@click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A .npy file of uint8 images (N, H, W, C).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "validation", "test"]),
    default=None,
    help="Use the recipe's data set split instead.",
)
@click.option("--max-images", type=click.IntRange(1), default=None, help="With --split: only the first N images.")
@latents_option
@batch_option
@seed_option
@device_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG plot of the rate of every layer.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the table as JSON.")
def rates(model_path, images_path, split, max_images, latents, batch_size, seed, device, plot, json_path):
    """The paper's Figure 5: the rate (KL) of every latent layer in bits per dimension, as a table and a plot."""
    if (images_path is None) == (split is None):
        raise ConfigError("genkit rates: give exactly one of --images FILE.npy or --split NAME")
    model = load_model(model_path, device)
    dims = math.prod(model.image_shape)
    if split is not None:
        from genkit.evaluate import evaluate_dataset

        torch.manual_seed(seed)
        dataset = model.recipe.data.build("dataset").split(split)
        per_layer = evaluate_dataset(model, dataset, batch_size=batch_size, max_images=max_images, device=device).get(
            "layer_rate_bits_per_dim"
        )
    else:
        terms = per_image_terms(
            model, read_images(images_path, model), latents=latents, batch_size=batch_size, device=device, seed=seed
        )
        layer_kl = terms.get("kl_nats_per_layer")
        per_layer = None if layer_kl is None else (np.mean(layer_kl, axis=0) / dims / LN2).tolist()
    if not per_layer:
        raise ConfigError(f"{model_path}: the model reports no per-layer KL, so it has no per-layer rates")
    resolutions = list(getattr(model, "layer_resolutions", [None] * len(per_layer)))
    total = sum(per_layer)
    table = [
        {"layer": i, "resolution": r, "bits_per_dim": b, "share": b / total if total > 0 else 0.0}
        for i, (r, b) in enumerate(zip(resolutions, per_layer))
    ]
    click.echo(f"{'layer':>5}  {'res':>5}  {'bits/dim':>12}  {'share':>7}")
    for row in table:
        click.echo(
            f"{row['layer']:>5}  {row['resolution'] or '':>5}  {row['bits_per_dim']:>12.6f}  "
            f"{100 * row['share']:>6.2f}%"
        )
    click.echo(f"{'total':>5}  {'':>5}  {total:>12.6f}")
    if plot:
        plot_rates(table, plot)
    if json_path:
        write_json(json_path, {"layers": table, "rate_bits_per_dim": total})


def plot_rates(table: list[dict], path: str) -> None:
    """Bars of every layer's rate, coloured by resolution, top layer first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _scale(images: torch.Tensor) -> int:
    """Enlarge small images so a grid of them is legible."""
    return max(1, 64 // int(images.shape[1]))


COMMANDS = [eval_command, sample, reconstruct, rates]
