"""What a run draws at every validation: the EMA model's samples and its own pictures, as PNGs under RUN/samples."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from genkit.engine.data import collate
from genkit.errors import DivergedError
from genkit.images import save_grid
from genkit.interfaces import GenerativeModel
from genkit.recipe import TrainConfig

PICTURE_ROWS = 8  # validation images a model's own pictures (reconstructions, …) are drawn from


@torch.no_grad()
def save_pictures(
    model: GenerativeModel,
    validation: torch.utils.data.Dataset,
    folder: Path,
    *,
    step: int,
    config: TrainConfig,
    device: torch.device,
) -> None:
    """``train.n_samples`` samples at ``train.sample_temperature`` and the model's own pictures (reconstructions, …)
    of the first validation images, all drawn from ``train.seed``; none, with a note, from outputs that are not
    finite (the validation figures say so too, and the run goes on to end in one line)."""
    scale = max(1, 96 // model.image_shape[0])  # small images are enlarged to be seen
    generator = torch.Generator(device).manual_seed(config.seed)
    temperature = config.sample_temperature
    images = collate([validation[i] for i in range(min(PICTURE_ROWS, len(validation)))]).to(device)
    try:
        samples = model.sample(config.n_samples, temperature, generator=generator)
        pictures = model.pictures(images, generator=generator, temperature=temperature)
    except DivergedError as exc:
        click.echo(f"step {step}: no samples drawn ({exc})", err=True)
        return
    save_grid(samples, folder / f"step-{step:08d}-samples.png", scale=scale)
    for name, (grid, columns) in pictures.items():
        save_grid(grid, folder / f"step-{step:08d}-{name}.png", nrow=columns, scale=scale)
