"""``genkit bench``'s figures as terminal tables: one recipe's details, and every recipe's samplers side by side."""

from __future__ import annotations

import shlex
from typing import Any


def _show(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_table(result: dict[str, Any]) -> str:
    """One recipe's figures as a two-column table."""
    rows = [
        ("recipe", str(result["recipe"])),
        ("device", result["device"]),
        ("torch / date", f"{result['torch']} / {result['date']}"),
        (
            "dtype / compile / channels-last / CUDA graph",
            f"{result['dtype']} / {result['compile']} / {result['channels_last']} / {result['cuda_graph']}",
        ),
        ("activation checkpointing", result["activation_checkpointing"]),
        ("parameters", f"{result['parameters']:,}"),
        (
            "batch / images",
            f"{result['batch']} / {result['images']}"
            + (f" (weights {result['weights']})" if result["weights"] else ""),
        ),
    ]
    if result["trained"]:
        rows += [
            ("train images/s", _show(result["train_images_per_s"], ".1f")),
            ("train ms/step (median)", _show(result["train_ms_per_step"], ".1f")),
            ("start to first step (s)", _show(result["first_step_s"], ".1f")),
            ("peak train memory (GiB)", _show(result["peak_memory_gib"], ".2f")),
            ("memory per image (MiB)", _show(result["memory_mib_per_image"], ".0f")),
            ("saved for backward, eager (MiB/image)", _show(result["saved_activations_mib_per_image"], ".1f")),
        ]
    rows += [
        (f"sample {row['batch']} images, T=1, {row['sampler']} (ms)", _show(row["ms"], ".1f"))
        for row in result["sampling"]
    ]
    rows.append(("eval images/s", _show(result["eval_images_per_s"], ".1f")))
    if result["trained"]:
        data = result["data_images_per_s"]
        rows += [
            ("data path images/s", "n/a (no data set here)" if data is None else f"{data:.0f}"),
            (
                "loss, float32 / this path (bits/dim)",
                f"{result['loss_float32_bpd']:.4f} / {result['loss_measured_path_bpd']:.4f}",
            ),
            ("loss relative difference", f"{100 * result['loss_relative_difference']:.3f}%"),
            ("GFLOP per image (fwd+bwd)", _show(result["gflop_per_image"], ".2f")),
            ("MFU", "n/a (device peak unknown)" if result["mfu"] is None else f"{100 * result['mfu']:.1f}%"),
        ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def sampler_table(results: list[dict[str, Any]]) -> str:
    """Every sampler of every recipe: recipe, sampler, device, batch, ms, images/s — one line each."""
    header = ("recipe", "sampler", "device", "batch", "ms", "images/s")
    lines = [
        (
            str(r["recipe"]),
            row["sampler"],
            r["device"],
            str(row["batch"]),
            f"{row['ms']:.1f}",
            f"{row['images_per_s']:.1f}",
        )
        for r in results
        for row in r["sampling"]
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    numeric = {3, 4, 5}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(header), *(fmt(line) for line in lines)])


def policy_table(result: dict[str, Any]) -> str:
    """Each activation-checkpointing policy's step against the step without: ms, ratio, MiB saved per image."""
    rows = result["policies"]
    width = max(len("policy"), *(len(row["policy"]) for row in rows))
    lines = [
        f"activation checkpointing, steps of {result['batch']} images timed in turn ({result['timed_steps']} each)",
        f"{'policy':<{width}}  {'ms/step':>9}  {'ratio':>6}  {'saved MiB/image':>15}",
    ]
    for row in rows:
        timing = f"{row['ms_per_step']:>9.1f}  {row['ratio']:>6.2f}"
        lines.append(f"{row['policy']:<{width}}  {timing}  {row['saved_mib_per_image']:>15.1f}")
    return "\n".join(lines)


def tune_table(result: dict[str, Any]) -> str:
    """The tuner's candidates, fastest first, and the ``--set`` options of the fastest correct one."""
    head = (
        f"{result['recipe']} on {result['device']}, torch {result['torch']}, {result['date']}: "
        f"batch {result['batch']}, {result['steps']} timed steps per setting in {result['rounds']} alternating rounds"
    )
    header = ("setting", "ms/step", "images/s", "vs float32", "guard", "")
    rows = []
    for row in sorted(result["candidates"], key=lambda r: (r["failed"] is not None, r.get("ms_per_step", 0.0))):
        if row["failed"] is not None:
            rows.append((row["setting"], "-", "-", "-", "-", row["failed"]))
            continue
        relative = row["relative_to_float32"]
        rows.append(
            (
                row["setting"],
                f"{row['ms_per_step']:.1f}",
                f"{row['images_per_s']:.1f}",
                "n/a" if relative is None else f"{relative:.2f}×",
                f"{100 * row['loss_relative_difference']:.4f}%",
                "" if row["correct"] else f"over {100 * result['guard_limit']:g}%",
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if 0 < i < 5 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [head, fmt(header).rstrip(), *(fmt(r).rstrip() for r in rows)]
    if result["fastest"] is None:
        lines.append("no setting kept the numerical guard: train in float32 as the recipe says")
    else:
        options = " ".join(f"--set {shlex.quote(text)}" for text in result["set"])
        lines.append(f"fastest correct: {result['fastest']}\n  {options}")
    return "\n".join(lines)
