"""``genkit plan``: the count on fake tensors against the real count on the CPU, the planning, the command."""

from __future__ import annotations

import contextlib

import pytest
import torch
from locations import ROOT
from torch import nn

from genkit.bench.plan import Fit, Line, MemoryCount, PolicyCount, count_memory, fit, run_command, suggestion
from genkit.bench.saved import SavedTrace, saved_bytes
from genkit.capabilities import RecomputableUnit
from genkit.cli import main
from genkit.engine.recompute import recomputing
from genkit.models import build_model
from genkit.recipe import load_recipe

GiB = 2**30
# the three families at small sizes
SMALL = {
    "vdvae": (
        ROOT / "recipes" / "digits.toml",
        ['model.enc_blocks="8x1,8d2,4x1,4d4,1x1"', 'model.dec_blocks="1x1,4m1,8m4"'],
    ),
    "pixelcnnpp": (ROOT / "recipes" / "pixelcnnpp-digits.toml", ["model.nr_resnet=1"]),
    "flowpp": (ROOT / "tests" / "recipes" / "flowpp-tiny.toml", []),  # three channels: see the note in docs
}


def autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()


@pytest.mark.parametrize("family", sorted(SMALL))
def test_the_count_on_fake_tensors_agrees_with_what_autograd_keeps_on_the_cpu_within_2_percent(family):
    path, overrides = SMALL[family]
    recipe = load_recipe(path, overrides)
    count = count_memory(recipe)
    torch.manual_seed(0)
    model = build_model(recipe).train()
    h, w, c = model.image_shape
    images = torch.randint(0, 256, (2, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for dtype, rows in count.counts.items():
        assert len(rows) >= 3  # off, at least one resolution and all
        for row in rows:
            with recomputing(model, row.policy, "test"):
                one, two = (saved_bytes(model, images[:n].clone(), autocast(dtype)) for n in (1, 2))
            assert row.kept.per_image == pytest.approx(two - one, rel=0.02), (dtype, row.policy)
            assert row.kept.at_one == pytest.approx(one, rel=0.02), (dtype, row.policy)


class Chain(nn.Module):
    """Two units ``tanh(x·W)`` in a row on 1,000 float64 features: each keeps one 8,000-byte tensor per image."""

    def __init__(self):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(1000, 1000, bias=False), nn.Tanh())
        self.second = nn.Sequential(nn.Linear(1000, 1000, bias=False), nn.Tanh())

    def forward(self, x):
        return self.second(self.first(x)).sum()


def test_the_trace_keeps_each_recomputed_units_inputs_and_peaks_when_the_last_one_is_made_again():
    model = Chain().double()
    units = [RecomputableUnit("a", 1, model.first), RecomputableUnit("b", 1, model.second)]
    with SavedTrace(model, units) as trace:
        model(torch.zeros(1, 1000, dtype=torch.float64))
    row = 1000 * 8
    # nothing recomputed: x (for W1's gradient) and the two tanh outputs; the weights do not count
    assert trace.kept() == 3 * row
    # every unit recomputed: its inputs, x and the first tanh's output
    assert trace.kept([0, 1]) == 2 * row
    # the second unit made again holds its own output (the second tanh) beside both kept inputs
    assert trace.peak_terms([0, 1]) == [2 * row, 2 * row, 3 * row]
    assert trace.largest([0, 1]) == row


def test_the_largest_micro_batch_dividing_the_share_that_fits_is_chosen():
    # 1 GiB of state and 1 GiB of activations per image, 0.5 GiB more at the worst moment, 0.2 GiB largest tensor
    row = PolicyCount("all", 2, Line(GiB, GiB), (Line(GiB, GiB), Line(1.5 * GiB, GiB)), Line(0.2 * GiB, 0))
    count = MemoryCount("r.toml", (32, 32, 3), 1, {"weights": GiB}, 2, {"float32": (row,)})
    memory = round((10 * GiB + 2**30) / 0.9)  # 10 GiB left after the reserve: 9 GiB of room beside the state
    chosen = fit(count, row, "float32", memory, share=32)
    # at b images: 1.5 + (b − 1) GiB at the worst moment + 2 · 0.2 GiB of gradient flow = b + 0.9 GiB ≤ 9: b ≤ 8
    assert (chosen.micro_batch, chosen.accumulate) == (8, 4)
    assert chosen.peak_bytes == pytest.approx(GiB + 8.9 * GiB)
    assert fit(count, row, "float32", memory, share=12).micro_batch == 6  # 8 does not divide 12


def test_the_suggestion_recomputes_least_among_policies_whose_micro_batch_keeps_the_gpu_busy():
    count = MemoryCount("r.toml", (32, 32, 3), 1, {}, 3, {})
    fits = [
        Fit("float32", "off", 16, 16, 0),
        Fit("float32", "resolution>=32", 64, 4, 0),
        Fit("float32", "all", 256, 1, 0),
    ]
    assert suggestion(count, fits, 256).policy == "resolution>=32"  # 64 images of 32×32: 65,536 pixels
    assert suggestion(count, fits[:1], 256).policy == "off"  # nothing busier fits
    assert suggestion(count, [Fit("float32", "off", 0, 0, 0)], 256) is None


def test_the_suggested_command_sets_a_recipe_whose_updates_take_the_planned_micro_batches():
    chosen = Fit("bfloat16", "resolution>=16", 4, 8, 0)
    digits = load_recipe(ROOT / "recipes" / "digits.toml")
    command = run_command("recipes/digits.toml", ("train.lr=1e-3",), chosen, 1, digits.train, 32)
    settings = [part.strip("'") for part in command.split(" --set ")[1:]]
    train = load_recipe(ROOT / "recipes" / "digits.toml", settings).train
    assert (train.lr, train.dtype, train.activation_checkpointing) == (1e-3, "bfloat16", "resolution>=16")
    assert (train.batch_size, train.global_batch, train.for_processes(1).accumulate) == (4, 32, 8)
    assert run_command("r.toml", (), chosen, 8, digits.train, 32).startswith(
        "torchrun --standalone --nproc_per_node=8 -m genkit run"
    )


def test_a_recipe_with_the_planned_global_batch_gets_only_the_micro_batch_set():
    ffhq = load_recipe(ROOT / "recipes" / "ffhq256.toml")
    command = run_command("recipes/ffhq256.toml", (), Fit("bfloat16", "off", 8, 4, 0), 1, ffhq.train, 32)
    assert "global_batch" not in command and "accumulate" not in command
    settings = [part.strip("'") for part in command.split(" --set ")[1:]]
    assert load_recipe(ROOT / "recipes" / "ffhq256.toml", settings).train.for_processes(1).accumulate == 4


def test_genkit_plan_prints_the_counts_the_fits_and_a_command(capsys):
    assert main(["plan", str(ROOT / "recipes" / "digits.toml"), "--gpu-memory", "2GiB", "--global-batch", "64"]) == 0
    out = capsys.readouterr().out
    assert "saved for backward, MiB per image" in out and "resolution>=8" in out
    assert "global batch 64 on 1 GPU of 2 GiB" in out and "--set 'train.global_batch=64'" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu-memory", "80XB"], "'80XB': expected an amount of memory such as 80GiB"),
        (["--gpu-memory", "80GiB", "--gpus", "3", "--global-batch", "32"], "--gpus 3: the global batch of 32 images"),
    ],
)
def test_genkit_plan_refuses_what_it_cannot_plan_in_one_line(args, message, capsys):
    assert main(["plan", str(ROOT / "recipes" / "digits.toml"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_memory_size_reads_decimal_and_binary_units():
    from genkit.cli.options import ByteSize

    size = ByteSize()
    assert [size.convert(text, None, None) for text in ("80GiB", "24GB", "512 MiB", "1000")] == [
        80 * 2**30,
        24 * 10**9,
        512 * 2**20,
        1000,
    ]
