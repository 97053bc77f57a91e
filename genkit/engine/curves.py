"""Learning curves read back from runs' ``metrics.jsonl``: tables at chosen steps and a plot.

Every ``train`` record of a run is the mean over the ``log_every`` steps that end at its
``step`` (updates that were skipped left out; an interval with none applied is a gap in the
curve), so the record at step 200 of a run logged every 50 steps is "the mean training loss
over steps 151–200" — the form in which the reference's learning curve is quoted.
``validation`` records are the EMA weights on the validation split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from genkit.engine.metrics import METRICS_NAME, read_records
from genkit.errors import DataError
from genkit.images import save_plot


@attrs.frozen
class Curve:
    label: str
    train: list[tuple[int, float]]  # (step, mean training loss in bits/dim over the interval ending there)
    validation: list[tuple[int, float]]  # (step, EMA validation bits/dim)


def read_curve(run_dir: str | Path, label: str | None = None) -> Curve:
    """The training and validation curve of the run in ``run_dir`` (or of a ``metrics.jsonl`` file itself)."""
    path = Path(run_dir)
    path = path / METRICS_NAME if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: not found; expected the {METRICS_NAME} that genkit run writes in its run directory")
    train, validation = [], []
    for number, _, record in read_records(path):
        split, step = record.get("split"), record.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            raise DataError(f"{path}:{number}: not a metrics record (expected a JSON object with 'step' and 'split')")
        value = record.get("loss_bpd" if split == "train" else "bits_per_dim")
        if not isinstance(value, (int, float)):  # null: no update applied in the interval (a gap in the curve)
            continue
        if split == "train":
            train.append((step, float(value)))
        elif split == "validation":
            validation.append((step, float(value)))
    if not train and not validation:
        raise DataError(f"{path}: holds no train or validation records yet")
    name = label or (path.parent.name if path.name == METRICS_NAME else path.stem)
    return Curve(name, sorted(train), sorted(validation))


def value_at(points: list[tuple[int, float]], step: int) -> float | None:
    """The value recorded at exactly ``step``, or ``None``."""
    for at, value in points:
        if at == step:
            return value
    return None


def table(curves: list[Curve], steps: list[int]) -> list[dict[str, Any]]:
    """One row per step: the training loss of every curve there (``None`` where it has no record)."""
    return [{"step": step, **{curve.label: value_at(curve.train, step) for curve in curves}} for step in steps]


def plot(curves: list[Curve], path: str | Path, *, title: str | None = None) -> None:
    """Training loss (lines) and EMA validation loss (markers) against step, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, curve in enumerate(curves):
        colour = f"C{index % 10}"
        if curve.train:
            steps, values = zip(*curve.train)
            ax.plot(steps, values, color=colour, label=f"{curve.label} (train)")
        if curve.validation:
            steps, values = zip(*curve.validation)
            ax.plot(steps, values, "o", color=colour, label=f"{curve.label} (validation, EMA)")
    ax.set_xlabel("step")
    ax.set_ylabel("bits/dim")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_plot(fig, path)
    plt.close(fig)
