"""`genkit plan`'s predicted peak against the peak a GPU measures, for a recipe under each policy given.

    python tools/plan_vs_peak.py recipes/cifar10.toml --batch-size 32 --policies off,resolution>=32 --json cmp.json

For each policy it counts the recipe's training memory on fake tensors as `genkit plan` does (the
training state plus the activations alive at the worst moment of backward, at this micro-batch,
without the planner's reserve), then runs a few real training steps through `genkit bench` with
`train.activation_checkpointing` set to that policy and reads `torch.cuda.max_memory_allocated`.
It prints both and their ratio. On a CPU (a dry run of this script) the measured peak is not
available and only the prediction is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genkit.bench import run_benchmark
from genkit.bench.plan import count_memory
from genkit.recipe import load_recipe


def compare(recipe_path: str, overrides: list[str], batch: int, policies: list[str], dtype: str, steps: int) -> list:
    rows = []
    count = count_memory(load_recipe(recipe_path, overrides))
    by_policy = {row.policy: row for row in count.counts[dtype]}
    for policy in policies:
        if policy not in by_policy:
            raise SystemExit(f"--policies: {policy!r} is none of this model's policies ({', '.join(by_policy)})")
        predicted = count.state_bytes + by_policy[policy].activation_bytes(batch)
        settings = [*overrides, f'train.dtype="{dtype}"', f'train.activation_checkpointing="{policy}"']
        measured = run_benchmark(
            load_recipe(recipe_path, settings),
            batch=batch,
            steps=steps,
            warmup=1,
            samples=2,
            sample_repeats=1,
            count_flops=False,
            use_data=False,
        )
        peak_gib = measured.get("peak_memory_gib")
        rows.append(
            {
                "recipe": recipe_path,
                "dtype": dtype,
                "policy": policy,
                "batch": batch,
                "predicted_peak_gib": predicted / 2**30,
                "measured_peak_gib": peak_gib,
                "measured_over_predicted": None if peak_gib is None else peak_gib / (predicted / 2**30),
                "device": measured["device"],
                "torch": torch.__version__,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a recipe override")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--policies", default="off", help="comma-separated activation-checkpointing policies")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = compare(args.recipe, args.overrides, args.batch_size, args.policies.split(","), args.dtype, args.steps)
    for row in rows:
        measured = "n/a (no CUDA)" if row["measured_peak_gib"] is None else f"{row['measured_peak_gib']:.2f} GiB"
        over = row["measured_over_predicted"]
        ratio = "" if over is None else f"  measured/predicted {over:.3f}"
        print(
            f"{row['dtype']} {row['policy']:<16} batch {row['batch']}: predicted {row['predicted_peak_gib']:.2f} GiB, "
            f"measured {measured}{ratio}"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
