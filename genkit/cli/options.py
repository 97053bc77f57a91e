"""Options shared by several commands, and the parameter types that check what a user types before any work."""

from __future__ import annotations

import re
from pathlib import Path

import click

SEED_MAX = 2**32 - 1  # the seeds numpy, scikit-learn and torch all accept (genkit.schema.SEEDS)
COUNT_MAX = 2**63 - 1  # how many images, steps or samples: beyond this no index or size fits in 64 bits


class OutputPath(click.Path):
    """A path a command writes, checked when the command line is read: a bad one fails at once, in one line naming
    the option, rather than after minutes of work.

    ``kind`` is ``"folder"``, ``"file"``, ``"json"`` (``-`` means standard output), ``"image"`` (an extension
    Pillow writes), ``"plot"`` (an extension matplotlib writes), ``"npy"`` or ``"safetensors"``.
    """

    def __init__(self, kind: str):
        folder = kind == "folder"
        super().__init__(file_okay=not folder, dir_okay=folder, allow_dash=kind == "json")
        self.kind = kind

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if self.kind == "json" and value == "-":
            return value
        from genkit.fileio import unwritable

        problem = unwritable(value, folder=self.kind == "folder") or self._format_problem(Path(value))
        if problem:
            self.fail(f"{value}: {problem}", param, ctx)
        return value

    def _format_problem(self, path: Path) -> str | None:
        suffix = path.suffix.lower()
        if self.kind in ("npy", "safetensors") and suffix != f".{self.kind}":
            return f"expected a file name ending in .{self.kind}"
        if self.kind == "image":
            from PIL import Image

            Image.init()
            if Image.registered_extensions().get(suffix) not in Image.SAVE:
                return f"{suffix or 'no extension'} is not an image format genkit can write; use .png"
        if self.kind == "plot":
            from matplotlib.backend_bases import FigureCanvasBase

            if suffix[1:] not in FigureCanvasBase.get_supported_filetypes():
                return f"{suffix or 'no extension'} is not a plot format matplotlib writes; use .png, .pdf or .svg"
        return None


class Device(click.ParamType):
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:1``, ``mps``…"""

    name = "device"

    def convert(self, value, param, ctx):
        import torch

        try:
            device = torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            self.fail(f"{value!r} is not a torch device; expected cpu, cuda, cuda:1, mps…", param, ctx)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                self.fail(f"{value!r}: this machine has no CUDA device that torch can use", param, ctx)
            if device.index is not None and device.index >= torch.cuda.device_count():
                self.fail(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA devices", param, ctx)
        elif device.type == "mps" and not torch.backends.mps.is_available():
            self.fail(f"{value!r}: MPS is not available on this machine", param, ctx)
        elif device.type not in ("cpu", "cuda", "mps"):
            self.fail(f"{value!r}: genkit runs on cpu, cuda or mps", param, ctx)
        return value


class ByteSize(click.ParamType):
    """An amount of memory: ``80GiB``, ``24GB``, ``81920MiB``, ``16 GiB`` (GB = 10⁹ bytes, GiB = 2³⁰), or bytes."""

    name = "size"
    UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        number, unit = re.fullmatch(r"\s*([0-9]*\.?[0-9]*)\s*([A-Za-z]*)\s*", str(value)).groups()
        scale = self.UNITS.get(unit.upper())
        try:
            size = float(number) * scale if scale is not None else None
        except ValueError:
            size = None
        if size is None or not 0 < size < 2**63:
            self.fail(f"{value!r}: expected an amount of memory such as 80GiB, 24GB or 81920MiB", param, ctx)
        return int(size)


class Count(click.IntRange):
    """A number of things (images, steps, samples): ``minimum`` or more, and small enough to index with."""

    def __init__(self, minimum: int):
        super().__init__(minimum, COUNT_MAX)

    def _describe_range(self) -> str:
        return f"x>={self.min}"  # the 64-bit ceiling is no advice worth a line of help


overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.lr=1e-4 (repeatable; VALUE is read as TOML, else as a string).",
)

overwrite_option = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the model or run that --out already holds (its files only; other files in the folder stay).",
)

json_option = click.option(
    "--json",
    "json_path",
    type=OutputPath("json"),
    default=None,
    metavar="PATH",
    help="Also write the result as JSON to PATH ('-': print it instead).",
)


def say(text: str, json_path: str | None) -> None:
    """A command's table or summary: on stdout, or on stderr when ``--json -`` keeps stdout for the JSON alone."""
    click.echo(text, err=json_path == "-")


def emit_json(path: str, data) -> None:
    """The ``--json PATH`` of every command: ``-`` prints ``data``, anything else is written atomically."""
    from genkit.fileio import json_text, write_json

    if path == "-":
        click.echo(json_text(data), nl=False)
    else:
        write_json(path, data)
