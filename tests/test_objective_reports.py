"""Every report names the model's objective and the parts that sum to it: the progress bar and the model card."""

from __future__ import annotations

import io

from pretrained_fixtures import tiny_recipe  # noqa: F401

from genkit.cards import model_card
from genkit.engine.metrics import Progress
from genkit.interfaces import Objective

ELBO = Objective(label="negative ELBO", key="elbo", parts=("distortion", "rate"))
EXACT = Objective(label="exact negative log-likelihood", exact=True)
EVALUATION = {
    "split": "test",
    "bits_per_dim": 4.3211,
    "images": 360,
    "objective": "negative ELBO",
    "method": "negative ELBO, one posterior sample per image",
}
RECORD = {"loss_bpd": 4.3211, "grad_norm": 12.5, "skipped_updates": 0, "images_per_s": 800.0}


def bar_text(objective: Objective, record: dict) -> str:
    progress = Progress(10, 0, enabled=True, objective=objective, file=io.StringIO())
    progress.show(record)
    text = str(progress.bar)
    progress.close()
    return text


def test_the_progress_bar_names_the_objective_and_shows_the_parts_that_sum_to_the_loss():
    text = bar_text(ELBO, {**RECORD, "distortion_bpd": 3.0, "rate_bpd": 1.3211})
    assert text.startswith("train (negative ELBO):")
    assert "loss 4.321 bpd (distortion 3.000 + rate 1.321) gnorm 12.5" in text


def test_the_progress_bar_of_an_objective_without_parts_shows_the_loss_alone():
    text = bar_text(EXACT, RECORD)
    assert text.startswith("train (exact negative log-likelihood):")
    assert "loss 4.321 bpd gnorm 12.5" in text and "rate" not in text


def test_the_card_names_the_objective_and_the_parts_the_evaluation_holds(tiny_recipe):
    evaluation = {**EVALUATION, "distortion_bits_per_dim": 3.0, "rate_bits_per_dim": 1.3211}
    card = model_card(tiny_recipe, {}, evaluation=evaluation, repo_id=None, license="mit", objective=ELBO)
    assert "The figure is the negative ELBO: distortion 3.0000 + rate 1.3211 bits/dim." in card


def test_the_card_of_an_evaluation_without_parts_names_the_objective_alone(tiny_recipe):
    card = model_card(tiny_recipe, {}, evaluation=EVALUATION, repo_id=None, license="mit", objective=ELBO)
    assert "The figure is the negative ELBO." in card and "distortion" not in card


def test_the_card_without_the_model_takes_the_label_the_evaluation_recorded(tiny_recipe):
    card = model_card(tiny_recipe, {}, evaluation=EVALUATION, repo_id=None, license="mit")
    assert "The figure is the negative ELBO." in card
