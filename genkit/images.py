"""Writing images: grids (sample sheets, reconstructions) as PNG files, arrays as ``.npy``, plots; each through
:func:`genkit.fileio.atomic_write`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from genkit.fileio import atomic_write


def make_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile ``uint8`` images ``(N, H, W, C)`` into one ``(rows·(H+p)+p, nrow·(W+p)+p, C)`` array, row-major."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"make_grid expects uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    padded = np.zeros((rows * nrow, h + padding, w + padding, c), dtype=np.uint8)
    padded[:n, padding:, padding:] = images
    grid = rearrange(padded, "(r k) h w c -> (r h) (k w) c", r=rows, k=nrow)
    return np.pad(grid, ((0, padding), (0, padding), (0, 0)))


def grid_image(images: torch.Tensor | np.ndarray, nrow: int | None = None, scale: int = 1) -> Image.Image:
    """``uint8`` images ``(N, H, W, C)`` as one picture (grey or RGB); ``scale`` enlarges them (nearest neighbour)."""
    grid = make_grid(images, nrow)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    picture = Image.fromarray(grid)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def save_grid(images: torch.Tensor | np.ndarray, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Save ``uint8`` images ``(N, H, W, C)`` as one PNG grid (:func:`grid_image`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = grid_image(images, nrow, scale)
    image_format = Image.registered_extensions()[path.suffix.lower()]  # the temporary file's name says nothing
    return atomic_write(path, lambda tmp: picture.save(tmp, format=image_format))


def save_array(images: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Save ``images`` as the ``.npy`` file ``path``."""
    array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add .npy to the temporary file's name
            np.save(fh, array)

    return atomic_write(path, write)


def save_plot(figure, path: str | Path) -> Path:
    """Save a matplotlib ``figure`` as ``path``, in the format its extension names."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:].lower(), dpi=120))
