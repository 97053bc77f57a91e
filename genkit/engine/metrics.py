"""What the user sees of a run: a progress bar, ``metrics.jsonl`` and (when installed) TensorBoard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from genkit.rundirs import METRICS_NAME


class MetricsLog:
    """Appends one JSON object per line; also mirrors scalars to TensorBoard if it is installed."""

    def __init__(self, run_dir: Path, *, resume_step: int | None = None):
        self.path = run_dir / METRICS_NAME
        if resume_step is not None and self.path.exists():
            # records written after the checkpoint we resume from describe steps that will be redone
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            pass

    def write(self, record: dict[str, Any]) -> None:
        record = {k: _plain(v) for k, v in record.items()}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(f"{prefix}/{key}", value, record.get("step", 0))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


class Progress:
    """A tqdm bar over the run's steps showing the latest logged figures (only rank 0 draws it)."""

    def __init__(self, total: int, start: int, enabled: bool, parts: tuple[str, ...] = ()):
        self.bar = tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True, desc="train")
        self.parts = parts
        self.last_time, self.last_step = time.perf_counter(), start

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def images_per_second(self, step: int, global_batch: int) -> float:
        now = time.perf_counter()
        rate = (step - self.last_step) * global_batch / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        return rate

    def show(self, record: dict[str, Any]) -> None:
        parts = " + ".join(f"{name} {record[name + '_bpd']:.3f}" for name in self.parts)
        loss = f"loss {record['loss_bpd']:.3f} bpd" + (f" ({parts})" if parts else "")
        self.bar.set_postfix_str(
            f"{loss} gnorm {record['grad_norm']:.1f} skipped {record['skipped_updates']} "
            f"{record['images_per_s']:.0f} img/s",
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()
