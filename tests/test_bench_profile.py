"""``genkit bench --profile N``: where one training step's time goes, the most expensive operations first."""

from __future__ import annotations

import json

import torch
from locations import ROOT

from genkit.bench.profile import profile_steps, profile_table
from genkit.cli import main


def test_the_profile_ranks_operations_by_their_own_time_and_their_shares_add_up():
    torch.manual_seed(0)
    big = torch.nn.Linear(512, 512)
    x = torch.randn(256, 512)

    def step():
        big(x).sum().backward()  # one large matrix product forward, two backward, and a few small ops

    result = profile_steps(step, torch.device("cpu"), steps=3, top=5)
    top = result["top"]
    assert len(top) == 5 and result["steps"] == 3 and result["ranked_by"] == "own CPU time"
    assert [row["ms_per_step"] for row in top] == sorted((row["ms_per_step"] for row in top), reverse=True)
    assert 0 < sum(row["share"] for row in top) <= 1 + 1e-9
    assert sum(row["ms_per_step"] for row in top) <= result["ms_per_step"] + 1e-9
    # the matrix products are among the most expensive (which one leads is timing, and so up to a busy machine)
    assert {"aten::addmm", "aten::mm"} & {row["name"] for row in top}
    assert all(row["calls_per_step"] > 0 for row in top)
    table = profile_table(result)
    assert table.splitlines()[0].startswith("the 5 most expensive operations over 3 steps, by own CPU time")
    assert len(table.splitlines()) == 2 + 5


def test_bench_profile_prints_the_table_and_writes_it_to_the_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    recipe = ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"
    args = ["bench", str(recipe), "--batch-size", "2", "--steps", "1", "--warmup", "1", "--no-flops"]
    assert main([*args, "--profile", "2", "--json", str(out)]) == 0
    assert "most expensive operations over 2 steps" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())
    assert result["profile"]["steps"] == 2 and len(result["profile"]["top"]) == 10
    assert result["profile"]["top"][0]["share"] >= result["profile"]["top"][-1]["share"] > 0


def test_profiling_needs_training_steps(tmp_path):
    recipe = ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"
    assert main(["bench", str(recipe), "--no-train", "--profile", "2"]) == 2
