"""``genkit push``: publish a model directory or a run directory to the Hugging Face Hub.

Loading needs no command of its own: every command taking MODEL (``eval``, ``sample``, …) accepts
a Hub repo id and fetches it through :func:`genkit.from_pretrained`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from genkit.cli.options import Count


@click.command()
@click.argument("model_path", metavar="MODEL_OR_RUN_DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option(
    "--private", is_flag=True, default=None, help="Create the repo private (only when it does not exist yet)."
)
@click.option("--token", default=None, help="A Hub token with write access (default: HF_TOKEN or the saved login).")
@click.option(
    "--message",
    "commit_message",
    default=None,
    help="Commit message (default: names the model and the genkit version).",
)
@click.option("--revision", default=None, help="Branch to commit to, created if needed (default: main).")
@click.option(
    "--license", "license_", default="mit", show_default=True, help="License of the weights, as a Hub license id."
)
@click.option(
    "--samples",
    type=Count(0),
    default=16,
    show_default=True,
    help="Images drawn for the card's grid when the directory has no samples.png (0: none).",
)
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help=(
        "Results of `genkit eval MODEL --split test --json FILE`, shown on the card "
        "(default: the directory's eval.json)."
    ),
)
def push(model_path, repo_id, private, token, commit_message, revision, license_, samples, eval_path):
    """Publish MODEL_OR_RUN_DIR (its latest EMA weights for a run) as the Hub model repo REPO_ID.

    Uploads config.json, model.safetensors, the README.md model card (with the bits/dim of
    eval.json), samples.png and eval.json, in one commit. HF_ENDPOINT selects another Hub.
    """
    from genkit.cards import check_evaluation
    from genkit.errors import ConfigError, printable
    from genkit.hub import push_to_hub

    evaluation = None
    if eval_path is not None:
        try:
            evaluation = json.loads(Path(eval_path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--eval {eval_path}: not valid JSON ({exc})") from None
        if not isinstance(evaluation, dict):
            raise ConfigError(f"--eval {eval_path}: expected the JSON object genkit eval --split --json writes")
        check_evaluation(evaluation, f"--eval {eval_path}")
    commit = push_to_hub(
        model_path,
        repo_id,
        private=private,
        token=token,
        commit_message=commit_message,
        revision=revision,
        license=license_,
        samples=samples,
        evaluation=evaluation,
    )
    click.echo(f"pushed {model_path} to {repo_id}: {printable(commit.commit_url)}")  # the Hub's own words


COMMANDS = [push]
