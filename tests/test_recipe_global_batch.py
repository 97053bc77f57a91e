"""``train.global_batch``: the images of one update, reached with as many micro-batches as the processes need."""

from __future__ import annotations

import attrs
import pytest

from genkit.errors import ConfigError, RecipeError
from genkit.recipe import TrainConfig, recipe_from_dict


def test_the_paper_batch_of_32_is_32_micro_batches_on_one_gpu_4_on_eight_and_1_on_32():
    config = TrainConfig(batch_size=1, global_batch=32)
    assert [config.for_processes(w).accumulate for w in (1, 8, 32)] == [32, 4, 1]


def test_without_a_global_batch_the_settings_are_kept_whatever_the_processes():
    config = TrainConfig(batch_size=4, accumulate=3)
    assert config.for_processes(8) is config


def test_a_global_batch_the_processes_cannot_reach_exactly_is_one_line_with_the_numbers():
    with pytest.raises(ConfigError, match=r"train.global_batch = 32 .* train.batch_size = 2 on each of 3 processes"):
        TrainConfig(batch_size=2, global_batch=32).for_processes(3)


@pytest.mark.parametrize(
    ("train", "key", "message"),
    [
        ({"batch_size": 3, "global_batch": 32}, "global_batch", "a multiple of train.batch_size = 3"),
        ({"batch_size": 2, "global_batch": 32, "accumulate": 4}, "accumulate", "train.global_batch = 32 sets it"),
        ({"global_batch": 0}, "global_batch", "a value >= 1"),
    ],
)
def test_a_global_batch_at_odds_with_the_micro_batch_is_refused_when_the_recipe_resolves(train, key, message):
    raw = {"model": {"name": "vdvae"}, "data": {"name": "digits"}, "train": train}
    with pytest.raises(RecipeError, match=rf"train.{key}: expected .*{message}"):
        recipe_from_dict(raw, file="r.toml")


def test_the_resolved_settings_keep_everything_but_the_accumulation():
    config = TrainConfig(batch_size=2, global_batch=16, lr=1e-3)
    assert attrs.evolve(config.for_processes(2), accumulate=1, global_batch=16) == config
