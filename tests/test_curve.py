"""``genkit curve``: runs' learning curves read back from metrics.jsonl, tabulated and plotted."""

from __future__ import annotations

import json

import pytest

from genkit.cli import main
from genkit.engine.curves import read_curve


def write_run(folder, train, validation=(), extra=()):
    folder.mkdir(parents=True)
    lines = [json.dumps({"step": s, "split": "train", "loss_bpd": v, "rate_bpd": 0.1}) for s, v in train]
    lines += [json.dumps({"step": s, "split": "validation", "bits_per_dim": v, "images": 10}) for s, v in validation]
    lines += [json.dumps(record) for record in extra]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_the_table_lists_each_run_at_the_asked_steps(tmp_path, capsys):
    a = write_run(
        tmp_path / "fp32",
        [(50, 7.0), (100, 6.5), (150, 6.25)],
        [(150, 6.3)],
        extra=[{"step": 150, "split": "final-test", "bits_per_dim": 6.2}],
    )
    b = write_run(tmp_path / "bf16", [(50, 7.5), (100, 6.0)])
    out = tmp_path / "curve.json"
    plot = tmp_path / "curve.png"
    assert main(["curve", str(a), str(b), "--at", "100,150", "--plot", str(plot), "--json", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["step", "fp32", "bf16"]
    assert text[1].split() == ["100", "6.5000", "6.0000"]
    assert text[2].split() == ["150", "6.2500", "-"]  # bf16 has no record there
    assert "fp32: validation 6.3000 bits/dim (EMA weights) at step 150" in text
    assert json.loads(out.read_text())["rows"] == [
        {"step": 100, "fp32": 6.5, "bf16": 6.0},
        {"step": 150, "fp32": 6.25, "bf16": None},
    ]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_name_the_runs_and_every_logged_step_is_the_default(tmp_path, capsys):
    a = write_run(tmp_path / "run", [(100, 5.0), (50, 6.0)])
    assert main(["curve", str(a / "metrics.jsonl"), "--label", "mine"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["step", "mine"] and [line.split()[0] for line in text[1:]] == ["50", "100"]


def test_a_run_written_by_the_trainer_reads_back(tmp_path):
    curve = read_curve(write_run(tmp_path / "r", [(2, 3.0)], [(2, 2.9)]))
    assert curve.label == "r" and curve.train == [(2, 3.0)] and curve.validation == [(2, 2.9)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json\n", "metrics.jsonl:1: not a metrics record"),
        ('{"split": "train"}\n', "metrics.jsonl:1: not a metrics record"),
        ('{"step": 1, "split": "final-test"}\n', "holds no train or validation records"),
    ],
)
def test_damaged_metrics_fail_with_one_line_naming_the_file_and_line(tmp_path, capsys, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(content)
    assert main(["curve", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_usage_errors(tmp_path, capsys):
    run = write_run(tmp_path / "run", [(1, 1.0)])
    assert main(["curve", str(run), "--label", "a", "--label", "b"]) == 2
    assert main(["curve", str(run), "--at", "ten"]) == 2
    assert main(["curve", str(tmp_path)]) == 1  # a folder without metrics.jsonl
    assert "metrics.jsonl: not found" in capsys.readouterr().err
