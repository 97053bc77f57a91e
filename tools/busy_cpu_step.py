"""A training step's time on idle cores against the same with other busy processes on the machine.

    python tools/busy_cpu_step.py recipes/digits.toml --rounds 5
    python tools/busy_cpu_step.py recipes/digits.toml --env OMP_NUM_THREADS=2     # PyTorch's own: every core

Each measurement is a fresh ``python -m genkit bench RECIPE --steps N ... --json`` process (genkit
chooses its thread settings when it starts, so every measurement starts under its own condition).
``loaded`` measurements run while ``--busy`` processes each spin one core at 100 %; ``idle`` ones
without. The two conditions alternate, in the order idle-loaded, loaded-idle, … so that a drift of
the machine's speed over the run weighs on both alike. It prints each measurement (the training
step's median ms and the thread count genkit chose), the median of each condition and the
loaded/idle ratio. Run it on a machine whose cores are otherwise idle: any other load is noise.

``--env KEY=VALUE`` sets a variable for the measured processes (not for the busy ones), which is
how the settings are compared: ``OMP_NUM_THREADS=2`` on two cores is what PyTorch does by itself,
``OMP_NUM_THREADS=1`` forces one thread. Options after ``--`` go to ``genkit bench`` as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY_LOOP = "while True: pass"
BUSY_SETTLE_S = 1.0  # the scheduler spreads the busy processes over the cores before genkit starts


def bench_step_ms(recipe: str, steps: int, warmup: int, env: dict[str, str], extra: list[str]) -> tuple[float, str]:
    """(median ms of the training step, the device line) of one ``genkit bench`` process."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.json"
        command = [sys.executable, "-m", "genkit", "bench", recipe, "--steps", str(steps), "--warmup", str(warmup)]
        command += ["--no-data", "--no-flops", "--samples", "1", "--sample-repeats", "1", "--json", str(out), *extra]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"busy_cpu_step: genkit bench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        (result,) = json.loads(out.read_text())
    return result["train_ms_per_step"], result["device"]


def measure(recipe: str, steps: int, warmup: int, busy: int, env: dict[str, str], extra: list[str]):
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        if spinners:
            time.sleep(BUSY_SETTLE_S)
        return bench_step_ms(recipe, steps, warmup, env, extra)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per condition (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--busy", type=int, default=1, help="busy processes while loaded (default 1)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the measured processes")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env {item}: expected KEY=VALUE")
        env[key] = value

    times: dict[str, list[float]] = {"idle": [], "loaded": []}
    for round_ in range(args.rounds):
        order = ("idle", "loaded") if round_ % 2 == 0 else ("loaded", "idle")
        for condition in order:
            busy = args.busy if condition == "loaded" else 0
            ms, device = measure(args.recipe, args.steps, args.warmup, busy, env, extra)
            times[condition].append(ms)
            print(f"round {round_ + 1}  {condition:<6}  {ms:8.1f} ms/step  {device}", flush=True)
    idle, loaded = statistics.median(times["idle"]), statistics.median(times["loaded"])
    print(f"median idle {idle:.1f} ms, loaded ({args.busy} busy) {loaded:.1f} ms: loaded/idle {loaded / idle:.2f}")


if __name__ == "__main__":
    main()
