"""tools/: the converter the GPU sessions use writes a tarball the cifar10 data set reads image for image; the
busy-CPU measurement alternates its conditions and cleans up after itself."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from locations import ROOT

from genkit.errors import DataError
from genkit_plugins.datasets.cifar import Cifar10, Cifar10Settings


def test_npy_arrays_become_a_cifar10_tarball_the_data_set_reads_back(tmp_path):
    train, test = np.split(np.random.default_rng(0).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), [23])
    for name, images in (("train", train), ("test", test)):
        np.save(tmp_path / f"{name}.npy", images)
    out = tmp_path / "data" / "cifar-10-python.tar.gz"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "npy_to_cifar10.py"),
            str(tmp_path / "train.npy"),
            str(tmp_path / "test.npy"),
            str(out),
        ],
        check=True,
    )

    with pytest.raises(DataError, match="MD5"):  # not the official file, and the reader says so
        Cifar10(Cifar10Settings(root=str(out)))
    data = Cifar10(Cifar10Settings(root=str(out), md5="", validation_size=3))
    held_in, held_out = data.split("train"), data.split("validation")
    seen = np.stack(
        [held_in[i].numpy() for i in range(len(held_in))] + [held_out[i].numpy() for i in range(len(held_out))]
    )
    assert len(held_in) == 20 and len(held_out) == 3
    # the same images, each whole (rows keep their pixels), in the reference's shuffled split
    assert sorted(map(bytes, seen)) == sorted(map(bytes, train))
    np.testing.assert_array_equal(np.stack([data.split("test")[i].numpy() for i in range(7)]), test)


def test_the_converter_refuses_arrays_of_another_shape(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 28, 28, 1), np.uint8))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "npy_to_cifar10.py"),
            str(tmp_path / "bad.npy"),
            str(tmp_path / "bad.npy"),
            str(tmp_path / "x.tar.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert (
        done.returncode == 1
        and done.stderr.strip()
        == "npy_to_cifar10: error: train: expected uint8 (N, 32, 32, 3), found uint8 (5, 28, 28, 1)"
    )


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_busy_cpu_step_alternates_idle_and_loaded_and_prints_the_ratio(monkeypatch, capsys):
    tool = load_tool("busy_cpu_step")
    seen = []

    def measure(recipe, steps, warmup, busy, env, extra):  # a loaded step takes 1.5 times an idle one
        seen.append((busy, env["OMP_NUM_THREADS"], extra))
        return (150.0 if busy else 100.0) + len(seen), "cpu (test)"

    monkeypatch.setattr(tool, "measure", measure)
    tool.main(["recipes/digits.toml", "--rounds", "3", "--env", "OMP_NUM_THREADS=2", "--", "--batch-size", "8"])
    assert [busy for busy, _, _ in seen] == [0, 1, 1, 0, 0, 1]
    assert {(threads, tuple(extra)) for _, threads, extra in seen} == {("2", ("--batch-size", "8"))}
    # idle 101, 104, 105 and loaded 152, 153, 156: medians 104 and 153
    assert capsys.readouterr().out.splitlines()[-1] == (
        "median idle 104.0 ms, loaded (1 busy) 153.0 ms: loaded/idle 1.47"
    )


def test_busy_cpu_step_starts_and_stops_its_busy_processes(monkeypatch):
    tool = load_tool("busy_cpu_step")
    spinners = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        spinners.append(real_popen(*args, **kwargs))
        return spinners[-1]

    monkeypatch.setattr(tool.subprocess, "Popen", popen)
    monkeypatch.setattr(tool, "BUSY_SETTLE_S", 0.0)
    monkeypatch.setattr(tool, "bench_step_ms", lambda *args: (all(s.poll() is None for s in spinners), "cpu"))
    assert tool.measure("recipe.toml", 1, 1, 2, {}, []) == (True, "cpu")
    assert len(spinners) == 2 and all(s.poll() is not None for s in spinners)
