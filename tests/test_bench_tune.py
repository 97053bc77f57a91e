"""``genkit bench --tune``: which settings it tries, the order it times them in, and the one it picks.

The clock is replaced by a fake one that charges each setting a fixed time, so nothing here is a timing.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from locations import ROOT

from genkit.bench.steps import GUARD_LIMIT
from genkit.bench.tables import tune_table
from genkit.bench.tune import Setting, candidate_settings, fastest_correct, round_orders, tune
from genkit.cli import main
from genkit.errors import ConfigError
from genkit.recipe import load_recipe

TINY = ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"
# the fake seconds per step of each setting: bf16 with channels-last the fastest
FAKE_SECONDS = {
    ("float32", False): 0.100,
    ("float32", True): 0.080,
    ("bfloat16", False): 0.070,
    ("bfloat16", True): 0.050,
}


def row(setting: str, ms: float, guard: float, failed: str | None = None) -> dict:
    return {"setting": setting, "ms_per_step": ms, "loss_relative_difference": guard, "failed": failed}


def test_a_cpu_offers_dtype_and_channels_last_and_the_cuda_graph_only_on_cuda():
    assert candidate_settings("cpu") == [
        Setting("float32", False),
        Setting("float32", True),
        Setting("bfloat16", False),
        Setting("bfloat16", True),
    ]
    assert len(candidate_settings("cuda")) == 16
    assert {s.cuda_graph for s in candidate_settings("cuda")} == {False, True}


def test_a_setting_given_on_the_command_line_is_held():
    assert candidate_settings("cpu", {"dtype": "bfloat16", "channels_last": None, "compile": None}) == [
        Setting("bfloat16", False),
        Setting("bfloat16", True),
    ]


def test_asking_for_the_cuda_graph_off_cuda_fails_in_one_line():
    with pytest.raises(ConfigError, match="--cuda-graph: a CUDA graph needs a CUDA device"):
        candidate_settings("cpu", {"cuda_graph": True})


def test_rounds_alternate_direction():
    assert round_orders(3, 4) == [[0, 1, 2], [2, 1, 0], [0, 1, 2], [2, 1, 0]]


def test_the_fastest_correct_setting_skips_faster_ones_over_the_guard_and_failed_ones():
    rows = [
        row("float32", 100.0, 0.0),
        row("bfloat16", 50.0, 2 * GUARD_LIMIT),
        row("bfloat16, channels-last", 40.0, 0.0, failed="out of memory"),
        row("float32, channels-last", 80.0, GUARD_LIMIT),
    ]
    assert fastest_correct(rows)["setting"] == "float32, channels-last"
    assert fastest_correct(rows[1:3]) is None


def test_the_set_options_select_the_setting_they_describe():
    setting = Setting("bfloat16", channels_last=True)
    assert setting.overrides == [
        'train.dtype="bfloat16"',
        "train.channels_last=true",
        "train.compile=false",
        "train.cuda_graph=false",
    ]
    train = load_recipe(TINY, setting.overrides).train
    assert (train.dtype, train.channels_last, train.compile, train.cuda_graph) == ("bfloat16", True, False, False)


def fake_timer(seen: list):
    def timer(bench, steps):
        key = (bench.config.dtype, bench.config.channels_last)
        seen.append(key)
        return FAKE_SECONDS[key] * steps

    return timer


def test_tune_times_every_setting_in_alternating_rounds_and_picks_the_fastest_correct_one():
    seen = []
    recipe = load_recipe(TINY)
    result = tune(
        recipe,
        batch=2,
        device=torch.device("cpu"),
        steps=4,
        rounds=2,
        warmup=1,
        use_data=False,
        timer=fake_timer(seen),
    )
    order = list(FAKE_SECONDS)
    assert seen == order + order[::-1]
    assert result["steps"] == 4 and result["rounds"] == 2
    times = {(r["dtype"], r["channels_last"]): r["ms_per_step"] for r in result["candidates"]}
    assert times == pytest.approx({key: 1000 * seconds for key, seconds in FAKE_SECONDS.items()})
    assert all(math.isfinite(r["loss_relative_difference"]) for r in result["candidates"])
    assert result["fastest"] == "bfloat16, channels-last"
    assert result["set"] == Setting("bfloat16", True).overrides
    table = tune_table(result)
    assert "fastest correct: bfloat16, channels-last" in table
    assert "--set 'train.dtype=\"bfloat16\"' --set train.channels_last=true" in table
    assert "0.50×" in table  # 50 ms against float32's 100 ms


def test_bench_tune_prints_and_writes_the_options_to_use(tmp_path, capsys, monkeypatch):
    seen = []
    out = tmp_path / "tune.json"
    args = ["bench", str(TINY), "--tune", "--batch-size", "2", "--steps", "2", "--rounds", "2", "--warmup", "1"]
    monkeypatch.setattr("genkit.bench.tune.default_timer", lambda device: fake_timer(seen))
    assert main([*args, "--no-data", "--dtype", "bfloat16", "--json", str(out)]) == 0
    assert set(seen) == {("bfloat16", False), ("bfloat16", True)}  # --dtype holds the dtype
    (result,) = json.loads(out.read_text())
    assert result["set"] == Setting("bfloat16", True).overrides
    assert "--set train.channels_last=true" in capsys.readouterr().out


def test_bench_tune_with_no_train_fails_in_one_line(capsys):
    assert main(["bench", str(TINY), "--tune", "--no-train"]) == 2
    assert "--tune: times training steps alone" in capsys.readouterr().err
