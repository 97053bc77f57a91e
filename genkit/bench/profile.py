"""Where a training step's time goes: ``torch.profiler`` over a few steps, the most expensive operations first.

On a GPU the operations are ranked by their own time on the device (kernels, copies); on a CPU by
their own CPU time. ``share`` is an operation's part of the summed own time of every operation in
the profiled steps, so the shares of all operations add up to 1 and the top ten say how concentrated
the step is: a few large kernels point at arithmetic or layout, a long flat tail at launch overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from genkit.bench.measures import synchronize

TOP = 10


def _own_time_us(event: Any, on_device: bool) -> float:
    """An averaged event's own (self) time in µs, summed over its calls."""
    if on_device:
        return float(getattr(event, "self_device_time_total", 0.0))
    return float(event.self_cpu_time_total)


def profile_steps(step: Callable[[], None], device: torch.device, steps: int, top: int = TOP) -> dict[str, Any]:
    """Run ``step`` ``steps`` times under the profiler and rank the operations by their own time."""
    on_device = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    events = [(e.key, _own_time_us(e, on_device), e.count) for e in prof.key_averages()]
    events = [e for e in events if e[1] > 0]
    total = sum(us for _, us, _ in events)
    events.sort(key=lambda e: e[1], reverse=True)
    return {
        "steps": steps,
        "ranked_by": "own time on the device" if on_device else "own CPU time",
        "ms_per_step": total / 1000 / steps,
        "top": [
            {"name": name, "calls_per_step": count / steps, "ms_per_step": us / 1000 / steps, "share": us / total}
            for name, us, count in events[:top]
        ],
    }


def profile_table(result: dict[str, Any]) -> str:
    """The profile as a table: operation, calls per step, ms per step, share of the step."""
    head = (
        f"the {len(result['top'])} most expensive operations over {result['steps']} steps, by {result['ranked_by']} "
        f"({result['ms_per_step']:.1f} ms per step in all)"
    )
    width = max([len("operation")] + [min(len(row["name"]), 60) for row in result["top"]])
    lines = [head, f"{'operation':<{width}}  {'calls':>7}  {'ms/step':>9}  {'share':>6}"]
    for row in result["top"]:
        name = row["name"] if len(row["name"]) <= 60 else row["name"][:57] + "..."
        lines.append(
            f"{name:<{width}}  {row['calls_per_step']:>7.1f}  {row['ms_per_step']:>9.2f}  {100 * row['share']:>5.1f}%"
        )
    return "\n".join(lines)
