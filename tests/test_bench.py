"""``genkit bench`` measures what it says; its FLOP count agrees with an independent measurement of the reference."""

from __future__ import annotations

import json

import pytest

from genkit.bench import flops_per_image, peak_for_name
from genkit.cli import main
from genkit.recipe import load_recipe

from locations import ROOT


@pytest.mark.slow
def test_cifar10_flops_per_image_match_the_reference_measurement():
    # ../shared/reference/gpu-anchor.md: the reference model costs 134 GFLOP per image for forward + backward
    flops = flops_per_image(load_recipe(ROOT / "recipes" / "cifar10.toml"))
    assert flops / 1e9 == pytest.approx(134.0, rel=0.005)


def test_device_peaks_are_matched_by_name_most_specific_first():
    assert peak_for_name("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert peak_for_name("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert peak_for_name("NVIDIA H200", "float32") == 494.7e12
    assert peak_for_name("Some Future GPU", "bfloat16") is None


def test_bench_command_prints_a_table_and_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    recipe = ROOT / "recipes" / "vdvae-tiny-5bit.toml"
    code = main(["bench", str(recipe), "--batch", "2", "--steps", "2", "--warmup", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "train images/s" in table and "GFLOP per image" in table and "MFU" in table
    result = json.loads(out.read_text())
    assert result["batch"] == 2 and result["dtype"] == "float32" and result["compile"] is False
    assert result["train_images_per_s"] == pytest.approx(2 / (result["train_ms_per_step"] / 1000))
    assert result["sample_ms"] > 0 and result["eval_images_per_s"] > 0 and result["first_step_s"] > 0
    assert result["gflop_per_image"] > 0
    assert result["parameters"] == 38302  # the fixture's count (reference/fixtures/vdvae-tiny-5bit)
    # no CUDA here: memory and MFU are not made up
    assert result["peak_memory_gib"] is None and result["mfu"] is None


def test_bench_overrides_dtype_from_the_command_line(tmp_path):
    out = tmp_path / "bench.json"
    recipe = ROOT / "recipes" / "vdvae-tiny-5bit.toml"
    assert main(["bench", str(recipe), "--batch", "1", "--steps", "1", "--warmup", "1", "--dtype", "bfloat16", "--no-flops", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dtype"] == "bfloat16" and result["gflop_per_image"] is None
