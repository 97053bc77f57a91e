"""Draw every picture of the documentation from real runs of the commands the documentation shows.

    python tools/make_doc_pictures.py                        # everything: three digits trainings, then seconds
    python tools/make_doc_pictures.py --only performance     # redraw the performance plot alone (seconds)
    python tools/make_doc_pictures.py --work /tmp/pics       # keep the runs there; a second call reuses them

It trains the three digits recipes (``genkit run recipes/digits.toml``, ``recipes/pixelcnnpp-digits.toml``,
``recipes/flowpp-digits.toml``) on the CPU in a work folder, then runs ``genkit sample``, ``genkit reconstruct``,
``genkit rates --plot`` and ``genkit curve --plot`` on them there, exactly as the captions show. Each picture is
quantised to a small palette and written to ``docs/pictures/NAME.png``; its figure in the page — the block
between ``<!-- picture: NAME -->`` and ``<!-- /picture -->`` — is rewritten with a caption giving the commands,
the device and the date. The performance plot is drawn from the tables of ``docs/performance.md`` themselves
(``PERFORMANCE_PANELS`` in ``tools/performance_plot.py`` says which table and column each bar series comes from):
edit a figure in a table, run ``--only performance``, and the plot follows. Nothing is timed, so a busy machine
changes how long this takes, not the pictures.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
from performance_plot import performance_figure
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PICTURES = DOCS / "pictures"
RUNS = {  # run directory (under the work folder) -> the command that trains it
    "runs/digits": "genkit run recipes/digits.toml",
    "runs/pixelcnnpp-digits": "genkit run recipes/pixelcnnpp-digits.toml",
    "runs/flowpp-digits": "genkit run recipes/flowpp-digits.toml",
}
TEST_IMAGES = "digits-test.npy"  # the first test digits, which `genkit reconstruct` reads
TEMPERATURES = ("0.1", "0.4", "0.7", "1.0")


@attrs.frozen
class Picture:
    """One picture: where it goes, what it shows, and the commands (run in the work folder) that draw it."""

    name: str
    page: str
    alt: str
    caption: str  # what the picture shows; the commands, device and date are added after it
    runs: tuple[str, ...]  # the run directories it needs
    commands: tuple[str, ...]  # the last writes the picture, unless ``compose`` builds it
    width: int  # displayed width in CSS pixels (it shrinks to the page on narrow screens)
    compose: Callable[[Path], Image.Image] | None = None  # builds the picture from the commands' output files


def temperature_row(work: Path) -> Image.Image:
    """The grids drawn at each of :data:`TEMPERATURES` side by side, each titled with its temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = [np.asarray(Image.open(work / f"t{t}.png").convert("L")) for t in TEMPERATURES]
    height, width = grids[0].shape
    fig, axes = plt.subplots(1, len(grids), figsize=(len(grids) * width / 100 + 0.4, height / 100 + 0.5), dpi=100)
    for ax, grid, t in zip(axes, grids, TEMPERATURES):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"temperature {t}", fontsize=10)
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    return figure_image(fig)


def figure_image(fig) -> Image.Image:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue()))


def family_samples(family: str, name: str, run: str, recipe: str) -> Picture:
    """The picture that opens a family's page: 64 samples of its digits model."""
    return Picture(
        f"{name}-samples",
        f"{name}.md",
        f"64 digits sampled from the digits {family}",
        f"64 samples of the model `genkit run {recipe}` trains on the handwritten digits (8×8, enlarged).",
        (run,),
        (f"genkit sample {run} --n 64 --seed 0 --out {name}-samples.png",),
        width=292,  # half the grid's width: whole pixels at 1× and 2× screen densities
    )


PICTURE_LIST = (
    family_samples("VDVAE", "vdvae", "runs/digits", "recipes/digits.toml"),
    family_samples("PixelCNN++", "pixelcnnpp", "runs/pixelcnnpp-digits", "recipes/pixelcnnpp-digits.toml"),
    family_samples("Flow++", "flowpp", "runs/flowpp-digits", "recipes/flowpp-digits.toml"),
    Picture(
        "vdvae-temperatures",
        "vdvae.md",
        "16 digits from the digits VDVAE at four temperatures",
        "The same 16 draws of the digits VDVAE at four temperatures: at low temperature the draws collapse towards "
        "a few average shapes; at 1.0 they are as varied as the model is.",
        ("runs/digits",),
        tuple(f"genkit sample runs/digits --n 16 --seed 0 --temperature {t} --out t{t}.png" for t in TEMPERATURES),
        width=640,
        compose=temperature_row,
    ),
    Picture(
        "vdvae-reconstructions",
        "vdvae.md",
        "test digits and their reconstructions from more and more latent layers",
        "Each row a test digit, then its reconstructions keeping the first k = 0, 1, 3, 6, 9 and 13 of the 13 "
        "latent layers from the posterior and drawing the rest from the prior at temperature 0.1 (the paper's "
        "Figure 4): with few layers kept it is some other digit, the 4×4 layers decide which digit it is, and with "
        f"all 13 it comes back almost exactly. `{TEST_IMAGES}` holds the first 8 test digits.",
        ("runs/digits",),
        (
            f"genkit reconstruct runs/digits --images {TEST_IMAGES} --n 8 --keep 0,1,3,6,9,13 --seed 0 "
            "--out vdvae-reconstructions.png",
        ),
        width=256,  # half the grid's width
    ),
    Picture(
        "vdvae-rates",
        "vdvae.md",
        "bits per dimension each latent layer of the digits VDVAE costs",
        "What each latent layer of the digits VDVAE costs on the test digits (the paper's Figure 5), top layer "
        "first, coloured by resolution.",
        ("runs/digits",),
        ("genkit rates runs/digits --split test --plot vdvae-rates.png",),
        width=560,
    ),
    Picture(
        "training-curves",
        "training.md",
        "training and validation bits/dim of the three digits recipes against step",
        "The three digits recipes learning: training bits/dim (lines, each the mean over 50 steps) and EMA "
        "validation bits/dim (markers). Flow++ reads the digits at 5 bits, so its figures are per 5-bit "
        "dimension and sit on another scale than the two 8-bit models'.",
        tuple(RUNS),
        (
            f"genkit curve {' '.join(RUNS)} --label VDVAE --label PixelCNN++ --label 'Flow++ (5-bit)' "
            "--plot training-curves.png",
        ),
        width=620,
    ),
)


def performance_plot(_work: Path) -> Image.Image:
    return figure_image(performance_figure((DOCS / "performance.md").read_text()))


PERFORMANCE = Picture(
    "performance",
    "performance.md",
    "bar charts of the figures in this page's tables",
    "The figures of this page's tables, each bar from its table (the tables name the device and date of "
    "every measurement).",
    (),
    (),
    width=620,
    compose=performance_plot,
)

ALL = {picture.name: picture for picture in (*PICTURE_LIST, PERFORMANCE)}


# --- running the commands, writing the pictures and their figures ------------------------------------------------


def run(command: str, work: Path, log: Path) -> None:
    """Run a documented ``genkit`` command in the work folder, with this checkout's genkit first on the path."""
    argv = [sys.executable, "-m", "genkit", *shlex.split(command)[1:]]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), *filter(None, [env.get("PYTHONPATH")])])
    print("$", command, flush=True)
    with log.open("a") as out:
        out.write(f"$ {command}\n")
        out.flush()
        done = subprocess.run(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{command} failed (exit {done.returncode}); the end of {log}:\n" + "\n".join(tail))


def write_test_images(work: Path) -> None:
    """The first 8 test digits as uint8 (8, 8, 8, 1), through the data set the recipe names."""
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from genkit.recipe import load_recipe

    split = load_recipe(ROOT / "recipes" / "digits.toml").data.build("dataset").split("test")
    np.save(work / TEST_IMAGES, np.stack([split[i].numpy() for i in range(8)]))


def small_png(picture: Image.Image, path: Path) -> None:
    """Save with a small palette: 32 greys for grey pictures, 64 colours for the others."""
    rgb = np.asarray(picture.convert("RGB"))
    if (rgb == rgb[..., :1]).all():
        picture = picture.convert("L")
    if picture.mode == "L":
        small = picture.quantize(colors=32)
    else:
        small = picture.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)


def device() -> str:
    import torch

    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__.split('+')[0]})"


def figure_block(picture: Picture, where: str, day: str) -> str:
    commands = "; ".join(f"`{c}`" for c in (*(RUNS[r] for r in picture.runs), *picture.commands))
    if commands:
        made = f"Drawn by {commands} on {where}, {day}."
    else:
        made = f"Drawn by `python tools/make_doc_pictures.py --only {picture.name}` on {day}."
    return (
        f"<!-- picture: {picture.name} -->\n"
        '<figure markdown="span">\n'
        f'  ![{picture.alt}](pictures/{picture.name}.png){{ width="{picture.width}" }}\n'
        f'  <figcaption markdown="span">{picture.caption} {made}</figcaption>\n'
        "</figure>\n"
        "<!-- /picture -->"
    )


BLOCK = re.compile(r"<!-- picture: (?P<name>[\w-]+) -->.*?<!-- /picture -->", re.DOTALL)


def update_page(picture: Picture, where: str, day: str) -> None:
    page = DOCS / picture.page
    text = page.read_text()
    blocks = [m for m in BLOCK.finditer(text) if m.group("name") == picture.name]
    if len(blocks) != 1:
        raise SystemExit(
            f"{page}: expected one '<!-- picture: {picture.name} -->…<!-- /picture -->' block where the picture "
            f"goes, found {len(blocks)}"
        )
    block = blocks[0]
    page.write_text(text[: block.start()] + figure_block(picture, where, day) + text[block.end() :])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(ALL), help="draw only these pictures")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one); its runs are reused")
    args = parser.parse_args(argv)
    chosen = [ALL[name] for name in args.only] if args.only else list(ALL.values())
    work = args.work or Path(tempfile.mkdtemp(prefix="genkit-doc-pictures-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "recipes").exists():
        (work / "recipes").symlink_to(ROOT / "recipes")
    log = work / "commands.log"
    print(f"work folder: {work} (every command's output: {log})", flush=True)
    for run_dir in dict.fromkeys(r for picture in chosen for r in picture.runs):
        if (work / run_dir / "results.json").is_file():
            print(f"reusing {run_dir}", flush=True)
        else:
            run(RUNS[run_dir], work, log)
    if any(TEST_IMAGES in c for picture in chosen for c in picture.commands):
        write_test_images(work)
    where, day = device(), datetime.date.today().isoformat()
    for picture in chosen:
        for command in picture.commands:
            run(command, work, log)
        if picture.compose is not None:
            image = picture.compose(work)
        else:
            image = Image.open(work / shlex.split(picture.commands[-1])[-1])
        small_png(image, PICTURES / f"{picture.name}.png")
        update_page(picture, where, day)
    sizes = {p.name: (PICTURES / f"{p.name}.png").stat().st_size for p in chosen}
    print("\n".join(f"docs/pictures/{name}.png  {size / 1024:.0f} KiB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
