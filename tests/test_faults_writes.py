"""Outputs: what a command writes never replaces what the user did not mean to replace (another model or run, a
device, a pipe), has the mode of any other new file, and a write the system refuses (a full disk, the file size
limit) is one line naming the file, with the previous checkpoint intact."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import threading
from pathlib import Path

import pytest
import torch
from fault_helpers import one_line, pixels_registry, tiny_recipe, trained_tiny  # noqa: F401
from locations import ROOT

from genkit import rundirs
from genkit.cli import main
from genkit.fileio import atomic_write, sha256

TESTS = Path(__file__).resolve().parent
DIGITS = ROOT / "recipes" / "digits.toml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny run, and an official-format VDVAE checkpoint of the digits recipe to convert."""
    import engine_plugins

    from genkit.models import build_model
    from genkit.recipe import load_recipe
    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    world = trained_tiny(tmp_path_factory.mktemp("faults-writes"))
    torch.manual_seed(0)
    torch.save(build_model(load_recipe(DIGITS)).state_dict(), world["root"] / "vdvae.th")  # its names are genkit's
    yield {**world, "checkpoint": world["root"] / "vdvae.th"}
    reset_registry()


def convert(source: Path, out: Path, *more: str) -> list[str]:
    return ["convert", "vdvae", str(source), "--recipe", str(DIGITS), "--out", str(out), *more]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- another model or run is never taken over --------------------------------------------------------------


@pytest.mark.parametrize("holds", ["model", "run"])
def test_convert_into_a_model_or_run_directory_is_refused_in_one_line_and_changes_nothing(
    world, tmp_path, capsys, holds
):
    out = tmp_path / "out"
    shutil.copytree(world[holds], out)
    before = snapshot(out)
    capsys.readouterr()
    assert main(convert(world["checkpoint"], out)) == 2
    line = one_line(capsys)
    assert f"--out {out}: already holds" in line and "or replace them with --overwrite" in line, line
    assert snapshot(out) == before


def test_convert_with_overwrite_replaces_the_model_and_leaves_no_trace_of_the_old_one(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world["model"], out)
    (out / "eval.json").write_text('{"split": "test", "bits_per_dim": 1.0}')  # the old model's figure
    (out / "notes.txt").write_text("mine")
    assert main(convert(world["checkpoint"], out, "--overwrite")) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["name"] == "vdvae" and config["converted_from"] == str(world["checkpoint"])
    assert not (out / "eval.json").exists() and not (out / "samples.png").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_run_into_a_model_directory_is_refused_in_one_line_and_changes_nothing(world, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(world["model"], out)
    before = snapshot(out)
    capsys.readouterr()
    assert main(["run", str(world["recipe"]), "--out", str(out)]) == 2
    assert f"--out {out}: already holds a model (config.json, model.safetensors" in one_line(capsys)
    assert snapshot(out) == before


def test_run_with_overwrite_replaces_a_model_directory_with_the_run(world, tmp_path):
    from genkit.pretrained import resolve_local

    out = tmp_path / "out"
    shutil.copytree(world["model"], out)
    assert main(["run", str(world["recipe"]), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "config.json").exists() and not (out / "README.md").exists()  # nor the old model's card
    assert resolve_local(out) == rundirs.latest_checkpoint(out)  # what eval, sample and push read now


# --- devices, pipes and links are written through, never replaced --------------------------------------------


@pytest.fixture
def devices(tmp_path):
    """Copies of /dev/null and /dev/full, a named pipe and a block device in ``tmp_path``: a bug that replaces one
    harms only the copy. Making device nodes needs root (CAP_MKNOD)."""
    folder = tmp_path / "dev"
    folder.mkdir()
    try:
        os.mknod(folder / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(folder / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        os.mknod(folder / "disk", 0o600 | stat.S_IFBLK, os.makedev(7, 250))  # a loop device nothing is attached to
    except PermissionError:
        pytest.skip("making device nodes needs root")
    os.mkfifo(folder / "pipe")
    return folder


def test_json_to_a_character_device_is_written_into_it_and_the_device_stays(world, devices, capsys):
    assert main(["eval", str(world["model"]), "--images", str(world["images"]), "--json", str(devices / "null")]) == 0
    assert stat.S_ISCHR(os.stat(devices / "null").st_mode)
    assert not [p for p in devices.iterdir() if p.name.startswith(".")]


def test_json_to_a_full_device_is_one_line_naming_it_and_the_device_stays(world, devices, capsys):
    capsys.readouterr()
    assert main(["eval", str(world["model"]), "--images", str(world["images"]), "--json", str(devices / "full")]) == 1
    assert one_line(capsys) == f"genkit: error: {devices / 'full'}: No space left on device"
    assert stat.S_ISCHR(os.stat(devices / "full").st_mode)


def test_json_to_a_named_pipe_reaches_its_reader_and_the_pipe_stays(world, devices):
    received = []
    reader = threading.Thread(target=lambda: received.append((devices / "pipe").read_text()), daemon=True)
    reader.start()
    assert main(["eval", str(world["model"]), "--images", str(world["images"]), "--json", str(devices / "pipe")]) == 0
    reader.join(timeout=30)
    assert len(json.loads(received[0])["nll_nats_per_dim"]) == 2
    assert stat.S_ISFIFO(os.stat(devices / "pipe").st_mode)


def test_json_to_a_block_device_is_refused_before_any_work(world, devices, capsys):
    capsys.readouterr()
    assert main(["show", str(world["recipe"]), "--json", str(devices / "disk")]) == 2
    assert f"{devices / 'disk'} is a block device" in one_line(capsys)
    assert stat.S_ISBLK(os.stat(devices / "disk").st_mode)


def test_a_write_to_dev_stdout_redirected_to_a_file_follows_what_was_printed_there(tmp_path):
    """Through the open descriptor, after what stands there: opening /proc/self/fd/1 anew would start over the
    file's first byte, and renaming over /dev/stdout would replace the system's link."""
    printed = tmp_path / "printed.txt"
    saved = os.dup(1)
    try:
        with printed.open("w") as redirect:
            os.dup2(redirect.fileno(), 1)  # as `genkit … --json /dev/stdout > printed.txt` leaves it
        os.write(1, b"printed first\n")
        atomic_write("/dev/stdout", lambda p: p.write_text('{"json": "after"}\n'))
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert printed.read_text() == 'printed first\n{"json": "after"}\n'
    assert Path("/dev/stdout").is_symlink() or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)


def test_a_write_through_a_link_replaces_the_file_it_names_and_keeps_the_link(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    atomic_write(tmp_path / "link.json", lambda p: p.write_text("new"))
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


# --- modes ---------------------------------------------------------------------------------------------------


def test_every_file_of_a_model_directory_has_the_mode_the_umask_gives_a_new_file(world, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(convert(world["checkpoint"], tmp_path / "model")) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "model").iterdir()}
    assert modes == dict.fromkeys(["config.json", "model.safetensors", "README.md"], 0o640)


def test_every_file_of_a_checkpoint_has_the_same_mode(world):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in world["model"].iterdir()}
    assert set(modes) >= {"model.safetensors", "trained.safetensors", "state.pt", "config.json"}
    assert len(set(modes.values())) == 1, modes


# --- refused writes: one line naming the file, the previous checkpoint intact -------------------------------


@contextlib.contextmanager
def file_size_limit(limit: int):
    """No file may grow beyond ``limit`` bytes in this block (RLIMIT_FSIZE, as ``ulimit -f`` sets it): a real refusal
    by the kernel. SIGXFSZ is ignored, so that such a write fails with EFBIG instead of killing the process, and the
    soft limit alone is lowered, so that it can be raised again."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize(
    "limit, file",
    [(100_000, "model.safetensors"), (200_000, "state.pt")],  # 131 KB of weights, and a state.pt of 272 KB
    ids=["safetensors", "torch-serializer"],
)
def test_a_checkpoint_beyond_the_file_size_limit_is_one_line_naming_the_file_and_the_latest_good_one(
    tmp_path, capsys, limit, file
):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=4, checkpoint_every=2))
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(run), "--set", "train.steps=2"]) == 0
    good = rundirs.latest_checkpoint(run)
    before = snapshot(good)
    capsys.readouterr()
    with file_size_limit(limit):
        status = main(["run", str(recipe), "--resume", str(run)])
    assert status == 1
    assert one_line(capsys, alone=False) == (
        f"genkit: error: {run / 'checkpoints' / 'step-00000004' / file}: could not be written (File too large); "
        f"the latest checkpoint is still {good}: continue from it with --resume {run} once the disk takes the write"
    )
    assert rundirs.checkpoint_dirs(run) == [good] and not list((run / "checkpoints").glob(".tmp-*"))
    assert snapshot(good) == before


def test_a_converted_model_beyond_the_file_size_limit_is_one_line_naming_the_file(world, tmp_path, capsys):
    out = tmp_path / "model"
    capsys.readouterr()
    with file_size_limit(100_000):  # the weights are 400 KB
        status = main(convert(world["checkpoint"], out))
    assert status == 1
    assert one_line(capsys) == f"genkit: error: {out / 'model.safetensors'}: File too large"
    assert not (out / "model.safetensors").exists()


def test_the_torch_serializer_meeting_a_full_disk_is_an_os_error_naming_the_file(devices):
    def save(path):
        with open(path, "wb") as fh:
            torch.save({"w": torch.zeros(100_000)}, fh)

    with pytest.raises(OSError) as info:
        atomic_write(devices / "full", save)
    assert (info.value.errno, info.value.filename) == (28, str(devices / "full"))
