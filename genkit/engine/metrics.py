"""What the user sees of a run: a progress bar, ``metrics.jsonl`` and (when installed) TensorBoard.

Every ``train`` record averages the updates applied in the steps since the previous one; an
interval in which every update was skipped has no average, and its figures are ``null``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from genkit.errors import DataError
from genkit.fileio import finite_json, write_text, writing
from genkit.interfaces import Objective
from genkit.rundirs import METRICS_NAME, TENSORBOARD

FINAL_PREFIX = "final-"  # the split of the one record of a run's final evaluation


def read_records(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """Every record of a ``metrics.jsonl``: (its line number, the line as written, the record).

    A last line cut short (a crash in the middle of writing it) is left out; any other line that is
    not a JSON object fails in one line naming it.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; expected the {METRICS_NAME} that genkit run writes") from None
    lines = text.splitlines()
    torn = bool(lines) and not text.endswith("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if torn and number == len(lines):
                break
            raise DataError(
                f"{path}:{number}: not a metrics record (expected one JSON object per line, as genkit run writes); "
                "repair or delete that line"
            )
        records.append((number, line, record))
    return records


class MetricsLog:
    """Appends one JSON object per line; also mirrors scalars to TensorBoard if it is installed.

    Resuming from step ``resume_step`` drops the records written after it (they describe steps that
    will be taken again), the record of an earlier final evaluation, and a last line torn by a crash.
    """

    def __init__(self, run_dir: Path, *, resume_step: int | None = None):
        self.path = run_dir / METRICS_NAME
        if resume_step is not None and self.path.exists():
            kept = [
                line
                for _, line, record in read_records(self.path)
                if _step(record) <= resume_step and not str(record.get("split", "")).startswith(FINAL_PREFIX)
            ]
            write_text(self.path, "".join(line + "\n" for line in kept))
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / TENSORBOARD))
        except ImportError:  # tensorboard is optional
            pass

    def write(self, record: dict[str, Any]) -> None:
        record = finite_json(record)  # JSON has no NaN or infinity
        with writing(self.path), self.path.open("a") as fh:  # a full disk names the file, not only its errno
            fh.write(json.dumps(record, allow_nan=False) + "\n")
        if self.writer is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(f"{prefix}/{key}", value, record.get("step", 0))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step(record: dict[str, Any]) -> int:
    step = record.get("step", 0)
    return step if isinstance(step, int) else 0


class Progress:
    """A tqdm bar over the run's steps showing the latest logged figures (only rank 0 draws it).

    Its description names the model's objective ("train (negative ELBO)"); the figures follow it as
    the loss in bits/dim and, for an objective with parts, the parts that sum to it.
    """

    def __init__(self, total: int, start: int, enabled: bool, objective: Objective, file=None):
        desc = f"train ({objective.label})"
        self.bar = tqdm(
            total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, desc=desc, file=file
        )
        self.objective = objective
        self.last_time, self.last_step = time.perf_counter(), start

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def images_per_second(self, step: int, global_batch: int) -> float:
        now = time.perf_counter()
        rate = (step - self.last_step) * global_batch / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        return rate

    def show(self, record: dict[str, Any]) -> None:
        if record["loss_bpd"] is None:
            figures = "no update applied since the last log"
        else:
            parts = self.objective.parts_text(record, "_bpd", digits=3)
            figures = f"loss {record['loss_bpd']:.3f} bpd" + (f" ({parts})" if parts else "")
            figures += f" gnorm {record['grad_norm']:.1f}"
        self.bar.set_postfix_str(
            f"{figures} skipped {record['skipped_updates']} {record['images_per_s']:.0f} img/s", refresh=False
        )

    def close(self) -> None:
        self.bar.close()
