"""Bad input: every mistake a user can make is one line with the documented exit status.

The table holds the one-line cases: a command, its exit status (2: usage, recipe and configuration; 1: a
failure at run time) and a phrase its one line must contain. The cases a table cannot hold (a real worker
pool, a run that diverges, intervals of skipped updates, resumes and torn files) are in ``test_faults_runs.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fault_helpers import error_lines, one_line, pixels_registry, tiny_recipe, trained_tiny, write_cifar10, write_images  # noqa: F401
from locations import ROOT
from PIL import Image

from genkit import rundirs
from genkit.cli import main
from genkit.fileio import json_text


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny model and the bad inputs the table names, made once for the module."""
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    world = trained_tiny(tmp_path_factory.mktemp("faults"))
    root, recipe, run, model = world["root"], world["recipe"], world["run"], world["model"]
    afile = root / "afile"
    afile.write_text("a regular file")
    config = json.loads((model / "config.json").read_text())
    damaged = {
        "config-array": "[1, 2]",
        "config-string": '"model"',
        "config-empty": "{}",
        "config-lr-inf": json.dumps({**config, "train": {**config["train"], "lr": float("inf")}}),  # Infinity
        "config-plugins-number": json.dumps({**config, "plugins": 5}),
    }
    for name, text in damaged.items():
        shutil.copytree(model, root / name)
        (root / name / "config.json").write_text(text)
    (root / "not-a-checkpoint.th").write_text("hello, not a checkpoint")
    (root / "hello.th").write_text("hello\n")  # unpickling it fails in a KeyError
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, root / "nested.th")
    torch.save({"w": torch.zeros(1, dtype=torch.int64)}, root / "integers.th")
    (root / "broken.npz").write_text("not a zip file")
    (root / "binary.jsonl").write_bytes(b"\x93NUMPY\x00\xff\xfe")
    (root / "damaged").mkdir()
    (root / "damaged" / "metrics.jsonl").write_text('{"step": 1, "spl\n{"step": 2, "split": "train"}\n')
    shutil.copytree(run, root / "partial")
    torch.save({"step": 2}, rundirs.latest_checkpoint(root / "partial") / "state.pt")
    (root / "taken").mkdir()
    (root / "taken" / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss_bpd": 3.0}\n')
    (root / "source.toml").write_text('source = "elsewhere.toml"\n' + recipe.read_text())
    (root / "inf.toml").write_text(recipe.read_text().replace("[eval]", "lr = inf\n[eval]"))
    write_cifar10(root / "cifar" / "cifar-10-python.tar.gz", n_train=20, n_test=5)
    (root / "cifar.toml").write_text(
        tiny_recipe(
            root / "runs",
            data=f'name = "cifar10"\nroot = "{root / "cifar"}"\nmd5 = ""\ndownload = false\nvalidation_size = 100',
            image_size=32,
            channels=3,
        )
    )
    sizes = root / "sizes"
    for split in ("train", "validation", "test"):
        write_images(sizes / split, 8)
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(sizes / "train" / "zz-small.png")
    (root / "sizes.toml").write_text(
        tiny_recipe(root / "runs", data=f'name = "image-folder"\nroot = "{sizes}"\nchannels = 1', batch_size=9)
    )
    recipes = {name: ROOT / "recipes" / f"{name}.toml" for name in ("digits", "pixelcnnpp-digits", "flowpp-digits")}
    yield {**world, "file": afile, "long": "x" * 300, **recipes}
    reset_registry()


CASES = [
    # recipe values, in the file or from --set: one line naming the key, exit 2
    ("lr-inf", "show {recipe} --set train.lr=inf", 2, "--set 'train.lr=inf': train.lr: expected a finite number"),
    ("lr-nan", "show {recipe} --set train.lr=nan", 2, "train.lr: expected a finite number, found nan"),
    ("decay-inf", "show {recipe} --set train.weight_decay=inf", 2, "train.weight_decay: expected a finite number"),
    ("beta-inf", "show {recipe} --set train.betas=[0.9,inf]", 2, "train.betas[1]: expected a finite number"),
    ("lr-inf-in-file", "show {root}/inf.toml", 2, "inf.toml: train.lr: expected a finite number, found inf"),
    ("int-beyond-64-bits", "show {recipe} --set train.steps=99999999999999999999", 2, "expected an integer from"),
    ("seed-negative", "show {recipe} --set train.seed=-1", 2, "train.seed: expected a value >= 0 and <= 4294967295"),
    ("split-seed-2**32", "show {recipe} --set data.split_seed=4294967296", 2, "data.split_seed: expected a value >= 0"),
    ("set-a-number-as-text", "show {recipe} --set train.lr=abc", 2, "--set 'train.lr=abc': train.lr: expected a"),
    ("set-unknown-key", "show {recipe} --set train.lrr=1", 2, "--set 'train.lrr=1': train.lrr: expected one of"),
    ("set-unknown-plugin", "show {recipe} --set model.name=nope", 2, "--set 'model.name=nope': model.name: unknown"),
    ("set-source", "show {recipe} --set source=x.toml", 2, "--set 'source=x.toml': source is written by genkit"),
    ("set-provenance", "show {recipe} --set plugins=[]", 2, "--set 'plugins=[]': plugins is written by genkit"),
    ("set-version", "show {recipe} --set genkit.version=1", 2, "genkit is written by genkit, not a setting"),
    ("set-empty-key", "show {recipe} --set train..lr=1", 2, "--set 'train..lr=1': expected KEY=VALUE"),
    ("set-breaks-a-check-across-keys", "show {digits} --set model.image_size=9", 2,
     "digits.toml: model.enc_blocks: expected blocks that start at image_size 9 and pool"),
    ("resume-with-another-model", "run {recipe} --resume {run} --set model.image_size=16", 2,
     "different [model] table than {recipe} with --set 'model.image_size=16' (model.image_size: 8 in the run, 16 now)"),
    ("source-in-file", "show {root}/source.toml", 2, "source.toml: source: expected one of the known keys"),
    # output paths, checked before any work: exit 2 naming the option
    ("json-under-a-file", "show {recipe} --json {file}/x.json", 2, "'--json': {file}/x.json: {file} is a file, not a"),
    ("eval-json-under-a-file", "eval {model} --images {images} --json {file}/x.json", 2, "{file} is a file, not a"),
    ("curve-json-under-a-file", "curve {run} --json {file}/c.json", 2, "'--json'"),
    ("sample-unknown-extension", "sample {model} --n 1 --out {root}/x.bmpx", 2, ".bmpx is not an image format"),
    ("sample-no-extension", "sample {model} --n 1 --out {root}/grid", 2, "no extension is not an image format"),
    ("sample-under-a-file", "sample {model} --n 1 --out {file}/x.png", 2, "'--out': {file}/x.png: {file} is a file"),
    ("npy-without-.npy", "sample {model} --n 1 --out {root}/ok.png --npy {root}/x.txt", 2, "ending in .npy"),
    ("reconstruct-under-a-file", "reconstruct {model} --images {images} --out {file}/x.png", 2, "'--out'"),
    ("rates-unknown-plot", "rates {model} --images {images} --plot {root}/x.docx", 2, ".docx is not a plot format"),
    ("curve-plot-under-a-file", "curve {run} --plot {file}/c.png", 2, "'--plot': {file}/c.png"),
    ("run-out-under-a-file", "run {recipe} --out {file}/run", 2, "'--out': {file}/run: {file} is a file, not a"),
    ("run-out-dir-a-file", "run {recipe} --set train.out_dir={file}", 2, "train.out_dir {file}/tiny: cannot write the"),
    ("convert-out-under-a-file", "convert vdvae {root}/x.th --recipe {digits} --out {file}/m", 2, "'--out'"),
    ("json-name-too-long", "show {recipe} --json {root}/{long}/x.json", 2, "'--json': {root}/{long}/x.json: File name"),
    ("eval-json-name-too-long", "eval {model} --images {images} --json {root}/{long}/x.json", 2, "'--json'"),
    ("sample-name-too-long", "sample {model} --n 1 --out {root}/{long}/x.png", 2, "'--out': {root}/{long}/x.png"),
    ("npy-name-too-long", "sample {model} --n 1 --out {root}/ok.png --npy {root}/{long}.npy", 2, "'--npy'"),
    ("curve-plot-name-too-long", "curve {run} --plot {root}/{long}/c.png", 2, "'--plot': {root}/{long}/c.png"),
    ("run-out-name-too-long", "run {recipe} --out {root}/{long}/run", 2, "'--out': {root}/{long}/run: File name"),
    ("out-dir-name-too-long", "run {recipe} --set train.out_dir={root}/{long}", 2, "train.out_dir {root}/{long}: can"),
    ("convert-out-name-too-long", "convert vdvae {root}/x.th --recipe {digits} --out {root}/{long}/m", 2, "'--out'"),
    ("out-holds-a-run", "run {recipe} --out {root}/taken", 2, "already holds the files of a run (metrics.jsonl)"),
    # other options: exit 2 naming the option
    ("device-unknown", "eval {model} --images {images} --device nope", 2, "'--device': 'nope' is not a torch device"),
    ("device-absent", "eval {model} --images {images} --device cuda:99", 2, "'--device': 'cuda:99'"),
    ("batch-beyond-64-bits", "eval {model} --images {images} --batch-size 99999999999999999999", 2, "'--batch-size'"),
    ("seed-beyond-range", "eval {model} --images {images} --seed 4294967296", 2, "'--seed'"),
    ("temperature-negative", "sample {model} --temperature=-1 --out {root}/t.png", 2, "'--temperature': '-1'"),
    ("temperature-inf", "sample {model} --temperature inf --out {root}/t.png", 2, "'inf': expected a finite number"),
    ("temperature-per-layer", "sample {model} --temperature 1,1 --out {root}/t.png", 2,
     "--temperature: expected one temperature per latent layer (1), found 2"),
    ("reconstruct-temperature-nan", "reconstruct {model} --images {images} --temperature nan --out {root}/r.png", 2,
     "'--temperature': 'nan': expected a finite number ≥ 0"),
    ("keep-negative", "reconstruct {model} --images {images} --keep=-1 --out {root}/r.png", 2, "'--keep': '-1'"),
    ("keep-beyond-the-layers", "reconstruct {model} --images {images} --keep 0,5 --out {root}/r.png", 2,
     "--keep: expected numbers of latent layers from 0 to 1, found 5"),
    # failures at run time: exit 1
    ("out-of-memory", "run {digits} --set model.width=1000000 --out {root}/huge", 1,
     "out of memory (CPU); one allocation asked for 931.3 GiB: lower the batch size (train.batch_size"),
    # files that are not what they should be: exit 1 naming the file
    ("config-an-array", "eval {root}/config-array --images {images}", 1, "config.json: expected a JSON object"),
    ("config-a-string", "eval {root}/config-string --images {images}", 1, "found a string"),
    ("config-empty", "eval {root}/config-empty --images {images}", 1, "config-empty/config.json: model: expected a"),
    ("config-lr-inf", "sample {root}/config-lr-inf --out {root}/s.png", 1,
     "config-lr-inf/config.json: train.lr: expected a finite number, found inf"),
    ("config-plugins-number", "eval {root}/config-plugins-number --images {images}", 1,
     "config-plugins-number/config.json: plugins: expected an array"),
    ("convert-not-a-checkpoint", "convert vdvae {root}/not-a-checkpoint.th --recipe {digits} --out {root}/c", 1,
     "not-a-checkpoint.th: not a PyTorch state dict"),
    ("convert-text", "convert pixelcnnpp {root}/hello.th --recipe {pixelcnnpp-digits} --out {root}/c", 1,
     "hello.th: not a PyTorch state dict that loads with weights_only=True (KeyError); expected a model.state_dict()"),
    ("convert-weights-one-level-down", "convert vdvae {root}/nested.th --recipe {digits} --out {root}/c", 1,
     "nested.th: 'model' holds a dict of 1 entries, not a tensor; expected a state dict"),
    ("convert-integer-tensor", "convert pixelcnnpp {root}/integers.th --recipe {pixelcnnpp-digits} --out {root}/c", 1,
     "integers.th: tensor 'w' is torch.int64, not floating point"),
    ("convert-missing-file", "convert pixelcnnpp {root}/nope.th --recipe {pixelcnnpp-digits} --out {root}/c", 1,
     "nope.th: checkpoint file not found; expected a model.state_dict() saved by pclucas14/pixel-cnn-pp"),
    ("convert-flowpp-not-an-npz", "convert flowpp {root}/broken.npz --recipe {flowpp-digits} --out {root}/c", 1,
     "broken.npz: not a readable .npz of TensorFlow variable names to arrays"),
    ("recipe-binary", "show {root}/binary.jsonl", 2, "binary.jsonl: not a text file; expected a recipe"),
    ("curve-binary", "curve {root}/binary.jsonl", 1, "binary.jsonl: not a text file"),
    ("resume-incomplete-state", "run {recipe} --resume {root}/partial", 1, "state.pt: the training state lacks"),
    ("curve-damaged-line", "curve {root}/damaged", 1, "metrics.jsonl:1: not a metrics record"),
    ("cifar-too-few-images", "run {root}/cifar.toml", 1, "cannot hold out 100 of only 20 training images"),
    ("image-of-another-size", "run {root}/sizes.toml --out {root}/sizes-run", 1, "zz-small.png: image is 6×6"),
]  # fmt: skip


@pytest.mark.parametrize("command, status, phrase", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_bad_input_is_one_line_with_its_exit_status(world, capsys, command, status, phrase):
    places = {key: str(value) for key, value in world.items()}
    capsys.readouterr()
    assert main([part.format(**places) for part in command.split()]) == status
    line = one_line(capsys)
    assert phrase.format(**places) in line, line


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where root cannot make a folder")
@pytest.mark.parametrize(
    "command",
    [
        "eval {model} --images {images} --json /proc/nope/x.json",
        "show {recipe} --json /proc/nope/x.json",
        "sample {model} --n 1 --out /proc/nope/x.png",
        "curve {run} --plot /proc/nope/c.png",
        "run {recipe} --out /proc/nope/run",
    ],
    ids=["eval-json", "show-json", "sample-out", "curve-plot", "run-out"],
)
def test_an_output_in_a_folder_that_cannot_be_made_fails_before_any_work_also_for_root(world, capsys, command):
    places = {key: str(value) for key, value in world.items()}
    capsys.readouterr()
    assert main([part.format(**places) for part in command.split()]) == 2
    captured = capsys.readouterr()
    assert not captured.out  # no figures, no samples: nothing was done
    lines = error_lines(captured.err)
    assert len(lines) == 1 and "cannot create the folder /proc/nope (" in lines[0], lines


def test_an_error_in_a_set_value_names_the_set_option_and_not_the_recipe_file(world, capsys):
    assert main(["show", str(world["recipe"]), "--set", "train.batch_size=0"]) == 2
    line = one_line(capsys)
    assert "--set 'train.batch_size=0': train.batch_size: expected a value >= 1" in line
    assert str(world["recipe"]) not in line


def test_an_error_in_the_recipe_file_names_the_file_whatever_else_is_set(world, capsys):
    assert main(["show", str(world["root"] / "inf.toml"), "--set", "train.seed=3"]) == 2
    assert f"{world['root'] / 'inf.toml'}: train.lr" in one_line(capsys)


def test_an_error_that_only_a_set_value_causes_elsewhere_names_that_set_option_and_no_other(world, capsys):
    # the blocks are the file's and fine for its image_size: a check across keys fails for the --set one
    command = ["show", str(world["digits"]), "--set", "train.seed=3", "--set", "model.image_size=9"]
    assert main(command) == 2
    line = one_line(capsys)
    assert line.startswith(f"genkit: error: {world['digits']}: model.enc_blocks: expected blocks")
    assert line.endswith(" (with --set 'model.image_size=9')")


@pytest.mark.parametrize(
    "error, line",
    [
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79"),
            "out of memory (CUDA); one allocation asked for 20.00 GiB: lower the batch size",
        ),
        (MemoryError(), "out of memory (CPU): lower the batch size"),
    ],
    ids=["cuda", "python"],
)
def test_running_out_of_memory_is_one_line_saying_what_to_lower(world, capsys, monkeypatch, error, line):
    from genkit import pretrained

    def too_large(*args, **kwargs):
        raise error

    monkeypatch.setattr(pretrained, "build_model", too_large)
    capsys.readouterr()
    assert main(["sample", str(world["model"]), "--out", str(world["root"] / "s.png")]) == 1
    assert line in one_line(capsys)


CPU_ALLOCATOR = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes. Error code 12"


def test_running_out_of_memory_while_reading_weights_is_not_called_damage(world, capsys, monkeypatch):
    """The readers turn their failures into "damaged file", but not a failed allocation: the file is fine."""
    from genkit import pretrained

    def too_large(*args, **kwargs):
        raise RuntimeError(CPU_ALLOCATOR)

    monkeypatch.setattr(pretrained, "load_file", too_large)
    capsys.readouterr()
    assert main(["sample", str(world["model"]), "--out", str(world["root"] / "s.png")]) == 1
    line = one_line(capsys)
    assert "out of memory (CPU); one allocation asked for 8 bytes" in line and "safetensors" not in line


def test_running_out_of_memory_while_reading_a_torch_checkpoint_is_not_called_damage(world, monkeypatch):
    from genkit import torchfiles

    def too_large(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torchfiles.torch, "load", too_large)
    with pytest.raises(torch.OutOfMemoryError):
        torchfiles.read_state_dict(world["root"] / "integers.th", "a test checkpoint")


def test_json_written_for_a_nan_figure_is_standard_json():
    text = json_text({"bits_per_dim": float("nan"), "layers": [1.0, float("inf")]})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}")) == {
        "bits_per_dim": "nan",
        "layers": [1.0, "inf"],
    }
