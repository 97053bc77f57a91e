"""``genkit bench`` measures what it says; its FLOP count agrees with an independent measurement of the reference."""

from __future__ import annotations

import json

import pytest
from locations import ROOT

from genkit.bench import flops_per_image, peak_for_name
from genkit.cli import main
from genkit.pretrained import save_pretrained
from genkit.recipe import load_recipe


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
    recipe = ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"
    code = main(["bench", str(recipe), "--batch-size", "2", "--steps", "2", "--warmup", "1", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "train images/s" in table and "GFLOP per image" in table and "MFU" in table
    result = json.loads(out.read_text())[0]
    assert result["batch"] == 2 and result["dtype"] == "float32" and result["compile"] is False
    assert result["train_images_per_s"] == pytest.approx(2 / (result["train_ms_per_step"] / 1000))
    (row,) = result["sampling"]
    assert row["sampler"] == "ancestral" and row["batch"] == 64 and row["ms"] > 0
    assert result["eval_images_per_s"] > 0 and result["first_step_s"] > 0
    assert result["gflop_per_image"] > 0
    assert result["parameters"] == 38302  # the fixture's count (reference/fixtures/vdvae-tiny-5bit)
    # no CUDA here: memory and MFU are not made up
    assert result["peak_memory_gib"] is None and result["mfu"] is None


def test_bench_overrides_dtype_from_the_command_line(tmp_path):
    out = tmp_path / "bench.json"
    recipe = ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"
    assert (
        main(
            [
                "bench",
                str(recipe),
                "--batch-size",
                "1",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--dtype",
                "bfloat16",
                "--no-flops",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())[0]
    assert result["dtype"] == "bfloat16" and result["gflop_per_image"] is None


def test_bench_reports_the_numerical_guard_and_the_data_path_on_real_images(tmp_path):
    out = tmp_path / "bench.json"
    digits = ROOT / "recipes" / "digits.toml"
    assert (
        main(
            [
                "bench",
                str(digits),
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--no-flops",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())[0]
    assert result["images"] == "digits validation images" and result["data_images_per_s"] > 0
    # float32 eager is the reference path itself: not a rounding apart
    assert result["loss_relative_difference"] == 0.0 and result["loss_float32_bpd"] == result["loss_measured_path_bpd"]
    assert 0 < result["loss_float32_bpd"] < 16

    assert (
        main(
            [
                "bench",
                str(digits),
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--no-flops",
                "--dtype",
                "bfloat16",
                "--no-data",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())[0]
    assert result["images"] == "random images" and result["data_images_per_s"] is None
    # bf16 rounds: the losses differ, and the reported difference is theirs
    assert result["loss_relative_difference"] > 0
    assert result["loss_relative_difference"] == pytest.approx(
        abs(result["loss_measured_path_bpd"] - result["loss_float32_bpd"]) / result["loss_float32_bpd"], rel=1e-9
    )
    assert result["loss_relative_difference"] < 0.02


def test_bench_measures_trained_weights_and_rejects_a_model_of_another_shape(tmp_path, capsys):
    from genkit.models import build_model

    digits = ROOT / "recipes" / "digits.toml"
    model = build_model(load_recipe(digits))
    save_pretrained(model, tmp_path / "digits-model", samples=0)
    out = tmp_path / "bench.json"
    args = [
        "bench",
        str(digits),
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--no-flops",
        "--no-data",
        "--json",
        str(out),
    ]
    assert main([*args, "--weights", str(tmp_path / "digits-model")]) == 0
    assert json.loads(out.read_text())[0]["weights"] == str(tmp_path / "digits-model")

    other = build_model(load_recipe(ROOT / "tests" / "recipes" / "vdvae-tiny-5bit.toml"))
    save_pretrained(other, tmp_path / "other-model", samples=0)
    capsys.readouterr()
    assert main([*args, "--weights", str(tmp_path / "other-model")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other-model" in err[0] and "model.safetensors" in err[0]
    assert main([*args, "--weights", str(tmp_path / "nowhere")]) == 2


def test_asking_the_bench_for_a_cuda_graph_without_cuda_fails_with_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", str(ROOT / "recipes" / "digits.toml"), "--cuda-graph", "--no-flops"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.cuda_graph = true needs a CUDA device" in err[0]


def test_saved_activations_count_what_autograd_keeps_per_image_and_leave_weights_out():
    import contextlib
    from types import SimpleNamespace

    import torch

    from genkit.bench import saved_activation_mib_per_image, saved_bytes

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 8, bias=False)

        def forward(self, x):
            # mm keeps its input (the weight is a parameter), GELU keeps its input; sum keeps nothing
            return SimpleNamespace(loss=torch.nn.functional.gelu(self.linear(x)).sum())

    model, x = Tiny(), torch.randn(3, 4)
    assert saved_bytes(model, x, contextlib.nullcontext()) == 3 * (4 + 8) * 4
    assert saved_activation_mib_per_image(model, x, contextlib.nullcontext) * 2**20 == (4 + 8) * 4


def test_bench_times_each_activation_checkpointing_policy_against_none_and_counts_what_it_keeps(tmp_path, capsys):
    out = tmp_path / "bench.json"
    recipe = ROOT / "recipes" / "digits.toml"
    args = ["bench", str(recipe), "--batch-size", "2", "--steps", "2", "--warmup", "1", "--no-flops", "--no-data"]
    args += ["--set", 'model.enc_blocks="8x1,8d2,4x1,4d4,1x1"', "--set", 'model.dec_blocks="1x1,4m1,8m4"']
    args += ["--samples", "2", "--sample-repeats", "1", "--activation-checkpointing", "all,resolution>=8", "--json"]
    assert main([*args, str(out)]) == 0
    assert "activation checkpointing, steps of 2 images timed in turn" in capsys.readouterr().out
    rows = {row["policy"]: row for row in json.loads(out.read_text())[0]["policies"]}
    assert list(rows) == ["off", "all", "resolution>=8"] and rows["off"]["ratio"] == 1.0
    for row in rows.values():
        assert row["ratio"] == pytest.approx(row["ms_per_step"] / rows["off"]["ms_per_step"])
    # what recomputation keeps (every unit's inputs) is the smaller, the more units are recomputed
    assert rows["all"]["saved_mib_per_image"] < rows["resolution>=8"]["saved_mib_per_image"]
    assert rows["resolution>=8"]["saved_mib_per_image"] < rows["off"]["saved_mib_per_image"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--activation-checkpointing", "blocks"], '--activation-checkpointing blocks: expected "off", "all" or'),
        (["--activation-checkpointing", "all", "--no-train"], "times training steps, and --no-train leaves them out"),
    ],
)
def test_bench_refuses_policies_it_cannot_time_in_one_line(extra, message, capsys):
    assert main(["bench", str(ROOT / "recipes" / "digits.toml"), *extra]) == 2
    assert message in capsys.readouterr().err
