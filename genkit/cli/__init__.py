"""The ``genkit`` command line. Each command lives in a small module listed in ``COMMAND_MODULES``;
plugins add theirs through the ``genkit_register_commands`` hook (:class:`PluginGroup`).

Errors print one line: ``genkit: error: …``, exit status 2 for usage or configuration
mistakes and 1 for failures at run time; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import re
import sys

import click

from genkit.cli.groups import PluginGroup
from genkit.cpu_threads import apply_cpu_defaults
from genkit.errors import ConfigError, GenkitError, is_out_of_memory, printable
from genkit.version import __version__

COMMAND_MODULES = [
    "genkit.cli.recipe_commands",
    "genkit.cli.model_commands",
    "genkit.cli.latent_commands",
    "genkit.cli.encode_commands",
    "genkit.cli.convert_commands",
    "genkit.cli.hub_commands",
    "genkit.cli.bench_commands",
    "genkit.cli.curve_commands",
    "genkit.cli.demo_commands",
]


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="genkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """genkit: likelihood-based generative models of images, assembled from plugins."""
    ctx.obj = {"debug": debug}


apply_cpu_defaults()  # before the command modules load PyTorch: OpenMP reads its thread count once, as it starts
for _module in COMMAND_MODULES:
    for _command in importlib.import_module(_module).COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="genkit", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("genkit: interrupted", err=True)
        return 130
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        if debug:
            raise
        click.echo(f"genkit: error: {_one_line(exc.format_message())}", err=True)
        return 2
    except GenkitError as exc:
        if debug:
            raise
        click.echo(f"genkit: error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("genkit: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug or an unexpected failure: still one line unless --debug
        if debug:
            raise
        memory = out_of_memory(exc)
        if memory is not None:
            click.echo(f"genkit: error: {memory}", err=True)
            return 1
        if isinstance(exc, OSError) and exc.filename is not None:
            # the file system said no (a full disk, a read-only mount, a path under a file): which path, and why
            click.echo(f"genkit: error: {_one_line(f'{exc.filename}: {exc.strerror or exc}')}", err=True)
            return 1
        click.echo(
            f"genkit: error: {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)", err=True
        )
        return 1


ASKED_BYTES = re.compile(r"tried to allocate (\d+) bytes", re.IGNORECASE)
ASKED_SIZE = re.compile(r"tried to allocate ([\d.]+ ?[KMGTP]i?B)", re.IGNORECASE)


def out_of_memory(exc: BaseException) -> str | None:
    """The one line for an allocation that failed (a batch or a model too large for the device), else ``None``."""
    if not is_out_of_memory(exc):
        return None
    text = str(exc)
    where = next((device for device in ("CUDA", "MPS", "XPU") if device in text), "CPU")
    asked = ""
    if match := ASKED_BYTES.search(text):
        asked = f"; one allocation asked for {_size(int(match.group(1)))}"
    elif match := ASKED_SIZE.search(text):
        asked = f"; one allocation asked for {match.group(1)}"
    return (
        f"out of memory ({where}){asked}: lower the batch size (train.batch_size, eval.batch_size or --batch-size, "
        "--n for samples) or the size of the model (its width, blocks or image size); for training, "
        "genkit plan RECIPE --gpu-memory SIZE says what fits, with activation checkpointing"
    )


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def _one_line(text: str) -> str:
    """An error as the one line it is printed as: its whitespace (newlines too) collapsed, and whatever it quotes from
    outside genkit (a server's answer, a model directory's strings) unable to steer the terminal."""
    return printable(" ".join(text.split()))


def entry_point() -> None:
    sys.exit(main())


__all__ = ["cli", "main", "ConfigError"]
