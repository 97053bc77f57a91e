"""Files that are not what they should be, each one line naming what is wrong where: a value in a recipe that another
extends, a long or deep recipe, a damaged variable or tensor of a checkpoint to convert, a CIFAR-10 batch whose values
are not pixels or whose archive member is not a file."""

from __future__ import annotations

import struct
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from cifar_archives import cifar_archive
from fault_helpers import one_line, pixels_registry, tiny_recipe  # noqa: F401
from locations import ROOT

from genkit.cli import main
from genkit.recipe import load_recipe
from genkit.recipefiles import MAX_NESTING

# --- recipes ----------------------------------------------------------------------------------------------------


def test_an_error_in_a_value_of_the_base_recipe_names_the_base_and_not_the_recipe_extending_it(tmp_path, capsys):
    base = tmp_path / "base.toml"
    base.write_text(tiny_recipe(tmp_path / "runs").replace("image_size = 8", "image_size = 0"))
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[train]\nsteps = 3\n')
    assert main(["show", str(child)]) == 2
    line = one_line(capsys)
    assert f"{base} (extended by {child}): model.image_size: expected a value >= 1, found 0" in line, line


def test_an_error_in_a_value_the_extending_recipe_sets_names_that_recipe(tmp_path, capsys):
    (tmp_path / "base.toml").write_text(tiny_recipe(tmp_path / "runs"))
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[train]\nsteps = -3\n')
    assert main(["show", str(child)]) == 2
    assert f"error: {child}: train.steps: expected a value >= 0, found -3" in one_line(capsys)


def test_an_extends_chain_longer_than_pythons_recursion_limit_resolves(tmp_path):
    (tmp_path / "r0.toml").write_text(tiny_recipe(tmp_path / "runs"))
    links = 1100
    for i in range(1, links + 1):
        (tmp_path / f"r{i}.toml").write_text(f'extends = "r{i - 1}.toml"\n[train]\nseed = {i}\n')
    recipe = load_recipe(tmp_path / f"r{links}.toml")
    assert recipe.train.seed == links and recipe.model.settings.image_size == 8


def test_a_recipe_nested_deeper_than_any_recipe_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.toml"
    deep.write_text("[model]\nname = " + "[" * 2000 + "]" * 2000 + "\n")
    dotted = tmp_path / "dotted.toml"
    dotted.write_text("[" + ".".join(["model"] * (MAX_NESTING + 1)) + "]\nname = 1\n")
    for path in (deep, dotted):
        assert main(["show", str(path)]) == 2
        assert f"{path}: nested more than {MAX_NESTING} tables or arrays deep; not a recipe" in one_line(capsys)


# --- checkpoints to convert -------------------------------------------------------------------------------------


def test_a_damaged_variable_of_an_npz_to_convert_is_named(tmp_path, capsys):
    source = tmp_path / "flowpp.npz"
    np.savez(source, context_proc=np.zeros(64, np.float32), Norm_4=np.ones(32, np.float32))
    data = bytearray(source.read_bytes())
    member = zipfile.ZipFile(source).getinfo("Norm_4.npy")
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    data[member.header_offset + 30 + name_length + extra_length + 130] ^= 0xFF  # a byte of its values
    source.write_bytes(bytes(data))
    recipe = ROOT / "recipes" / "flowpp-digits.toml"
    assert main(["convert", "flowpp", str(source), "--recipe", str(recipe), "--out", str(tmp_path / "m")]) == 1
    assert f"{source}: variable 'Norm_4' is damaged (BadZipFile: Bad CRC-32 for file 'Norm_4.npy')" in one_line(capsys)


def test_a_weight_norm_pair_of_mismatched_shapes_to_convert_is_named(tmp_path, capsys):
    source = tmp_path / "pixelcnnpp.th"
    state = {
        "u_init.deconv.weight_g": torch.ones(3, 1, 1, 1),
        "u_init.deconv.weight_v": torch.ones(4, 2, 2, 2),
        "u_init.deconv.bias": torch.ones(2),
    }
    torch.save(state, source)
    recipe = ROOT / "recipes" / "pixelcnnpp-digits.toml"
    assert main(["convert", "pixelcnnpp", str(source), "--recipe", str(recipe), "--out", str(tmp_path / "m")]) == 1
    line = one_line(capsys)
    assert f"{source}: u_init.deconv.weight_g has shape (3, 1, 1, 1) and u_init.deconv.weight_v (4, 2, 2, 2)" in line


# --- CIFAR-10 archives ------------------------------------------------------------------------------------------


def cifar_run(tmp_path, archive: bytes, capsys) -> str:
    folder = tmp_path / "cifar"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(archive)
    recipe = tmp_path / "cifar.toml"
    data = f'name = "cifar10"\nroot = "{folder}"\nmd5 = ""\ndownload = false\nvalidation_size = 5'
    recipe.write_text(tiny_recipe(tmp_path / "runs", data=data, image_size=32, channels=3))
    capsys.readouterr()
    assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 1
    return one_line(capsys)


ROWS = np.random.default_rng(3).integers(0, 256, (20, 3072))


@pytest.mark.parametrize(
    "train, found",
    [
        (np.where(ROWS == 0, 300, ROWS), "int64 values from 1 to 300"),
        (ROWS.astype(np.float64) - 1.0, "float64 values from -1.0 to 254.0"),
        (ROWS + 0.5, "float64 values from 0.5 to 255.5"),
    ],
    ids=["beyond-255", "negative", "fractions"],
)
def test_a_cifar_batch_whose_values_are_not_pixels_is_one_line(tmp_path, capsys, train, found):
    line = cifar_run(tmp_path, cifar_archive(train, ROWS[:5].astype(np.uint8)), capsys)
    assert f"cifar-10-batches-py/data_batch_1: batch data holds {found}, expected the pixels 0 … 255" in line, line


def test_a_cifar_batch_of_integers_that_are_all_pixels_reads_as_those_pixels(tmp_path):
    from test_datasets import build, images_of

    folder = tmp_path / "cifar"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(cifar_archive(ROWS, ROWS[:5].astype(np.int16)))
    data = build("cifar10", root=str(folder), md5="", download=False, validation_size=0)
    expected = ROWS[:5].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    assert np.array_equal(images_of(data.split("test")), expected)


def member(kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo("placeholder")
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(
    "special, what",
    [
        (member(tarfile.SYMTYPE, "test_batch"), "a link to 'test_batch'"),
        (member(tarfile.LNKTYPE, "cifar-10-batches-py/test_batch"), "a link to 'cifar-10-batches-py/test_batch'"),
        (member(tarfile.DIRTYPE), "a folder"),
        (member(tarfile.CHRTYPE), "a device"),
        (member(tarfile.FIFOTYPE), "a FIFO"),
    ],
    ids=["symlink", "hard-link", "folder", "device", "fifo"],
)
def test_a_cifar_archive_member_that_is_not_a_regular_file_is_one_line(tmp_path, capsys, special, what):
    archive = cifar_archive(ROWS.astype(np.uint8), ROWS[:5].astype(np.uint8), {"data_batch_2": special})
    line = cifar_run(tmp_path, archive, capsys)
    assert f"cifar-10-batches-py/data_batch_2 is {what}, not a regular file; expected the official" in line, line
