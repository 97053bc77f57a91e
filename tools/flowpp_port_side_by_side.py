"""64 samples of genkit's Flow++ against the PyTorch port chrischute/flowplusplus at the same size, in one process.

    python tools/flowpp_port_side_by_side.py recipes/flowpp-digits.toml --port /path/to/flowplusplus
    python tools/flowpp_port_side_by_side.py recipes/flowpp-cifar10.toml --port /path/to/flowplusplus --threads 2
    python tools/flowpp_port_side_by_side.py recipes/flowpp-digits.toml --port ../port --weights runs/flowpp-digits

Nothing is fetched and none of the port is copied: ``--port`` names a local checkout, which goes on
``sys.path`` so that its ``models.FlowPlusPlus`` is imported from there. genkit's model is built as
``genkit bench --no-train --no-data`` builds it (``genkit.bench.prepare_step``: the recipe's seed, random
images of its shape, data-dependent init, the EMA copy in eval mode), with ``--weights`` (a model or
run directory) loaded in place of the initialisation, and draws with ``model.sample`` at temperature 1.
A trained model's mixtures take genkit's search more passes than an untrained one's, so ``--weights``
is the fair setting; the port's bisection takes the same number of halvings whatever its weights, and
stays at its initialisation. The port is built with the arguments below, initialised by one forward pass in
training mode on the same images (its ActNorms set themselves on their first batch, and sample
infinities before), and draws as its ``train.py`` does: ``sigmoid`` of the reverse pass of ``N(0, 1)``
latents of the image's shape. Both run in float32 under ``torch.no_grad`` on the CPU with the same
threads. After one untimed call of each, every round times one call of each, in the order
genkit-port, then port-genkit, so that a drift of the machine's speed weighs on both alike. It prints
the median ms of each and their ratio (port/genkit), with the device, the torch version and the date.

The port's arguments, from the recipe's ``[model]``:

* ``scales``: ``stages`` cut at each ``squeeze``, each piece as ``(channel steps, checkerboard steps)``:
  ``checkerboard:4,squeeze,channel:2,checkerboard:3`` (both recipes) → ``((0, 4), (2, 3))``;
* ``in_shape = (image_channels, image_size, image_size)``: ``(1, 8, 8)`` for flowpp-digits,
  ``(3, 32, 32)`` for flowpp-cifar10;
* ``mid_channels = filters``, ``num_blocks = blocks``, ``num_components = components``: 16, 1, 16 for
  flowpp-digits, 96, 10, 32 for flowpp-cifar10; ``use_attn = True``; ``drop_prob = 0`` (dropout is
  off when sampling on both sides);
* ``num_dequant_blocks = dequant_blocks`` for the ``variational`` dequantizer (2 for flowpp-cifar10),
  0 (the port's uniform noise) for ``uniform`` (flowpp-digits);
* ``heads``, for which the port's constructor has no argument (every ``GatedAttn`` has 4), is set on
  each ``GatedAttn`` after construction: 2 for flowpp-digits, 4 for flowpp-cifar10.

What still differs (docs/flowpp.md lists the first seven):

* the port factors out half the channels after each squeeze, so its second scale couples 2C channels
  at H/2×W/2 where genkit's couples all 4C;
* ActNorm per channel; a true checkerboard; one 1×1 matrix mixing both halves; PixelUnshuffle's
  channel order; a fixed sinusoidal position encoding (genkit's is learned); ``(logit F + b)·e^a``;
  weight normalisation without data-dependent init (its weights are those of ``nn.Conv2d``'s init);
* the inverse of each coupling: the port bisects until a step is below 1e-10 or 100 halvings, reading
  the step back to the host at every pass; genkit runs safeguarded Newton passes, on a CPU until each
  element has settled (at most ``NEWTON_PASSES``), elsewhere all of them with no read-back. The script
  prints both searches' passes per coupling (genkit's: evaluations per element, on average);
* the dequantizer, which sampling does not run, so it changes the parameter count only: the port's
  uses ``mid_channels`` filters, 32 components, 4 couplings, 32 context channels and 3 gated
  convolutions with a 1×1 gate, whatever the recipe says;
* the port reads 8-bit pixels (``x·255``), which matters only to the images its init sees.

The port cannot match a recipe whose ``coupling`` is not ``mlc``, whose stages put a checkerboard
before a channel split within a scale or name another split, or whose image width is odd where a
checkerboard or squeeze meets it; the script then says so in one line and stops.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from genkit.bench import prepare_step
from genkit.bench.measures import device_name, elapsed_seconds
from genkit.errors import GenkitError
from genkit.fileio import write_json
from genkit.recipe import load_recipe
from genkit_plugins.flowpp.flow import parse_stages
from genkit_plugins.flowpp.inverse import NEWTON_PASSES

FLOAT32_EAGER = ['train.dtype="float32"', "train.compile=false", "train.channels_last=false", "train.cuda_graph=false"]


class Unmatched(SystemExit):
    """A recipe whose size the port cannot take: one line, and the script stops."""

    def __init__(self, recipe: str, reason: str):
        super().__init__(f"flowpp_port_side_by_side: the port cannot match {recipe}: {reason}")


def port_arguments(recipe) -> tuple[dict, int]:
    """(the port's ``FlowPlusPlus`` arguments for ``recipe``'s model, the heads to set on its attention)."""
    settings, where = recipe.model.settings, recipe.source
    if recipe.model.name != "flowpp" or settings.coupling.name != "mlc":
        raise Unmatched(where, "the port has mixture-CDF couplings (mlc) of a flowpp model only")
    scales, scale, width = [], [0, 0], settings.image_size
    for stage in parse_stages(settings.stages):
        if stage.name == "squeeze":
            if width % 2:
                raise Unmatched(where, f"a squeeze meets an odd width {width}")
            scales.append(tuple(scale))
            scale, width = [0, 0], width // 2
        elif stage.name in ("channel", "checkerboard"):
            slot = int(stage.name == "checkerboard")
            if not slot and scale[1]:
                raise Unmatched(
                    where, f"{settings.stages!r}: each scale of the port is channel steps, then checkerboard"
                )
            if slot and width % 2:
                raise Unmatched(where, f"a checkerboard meets an odd width {width}")
            scale[slot] += stage.steps
        else:
            raise Unmatched(where, f"{stage.name!r}: the port splits by channel or checkerboard and squeezes only")
    scales.append(tuple(scale))
    variational = settings.dequantizer.name == "variational"
    arguments = dict(
        scales=tuple(scales),
        in_shape=(settings.image_channels, settings.image_size, settings.image_size),
        mid_channels=settings.filters,
        num_blocks=settings.blocks,
        num_dequant_blocks=settings.dequant_blocks if variational else 0,
        num_components=settings.components,
        use_attn=True,
        drop_prob=0.0,
    )
    return arguments, settings.heads


def build_port(port: Path, arguments: dict, heads: int, seed: int):
    """The port's model, imported from the checkout at ``port``, with ``heads`` on its attention."""
    if not (port / "models" / "flowplusplus" / "flowplusplus.py").is_file():
        sys.exit(f"flowpp_port_side_by_side: --port {port}: no models/flowplusplus/flowplusplus.py there")
    sys.path.insert(0, str(port))
    from models import FlowPlusPlus  # the port's own package
    from models.flowplusplus.nn import GatedAttn

    torch.manual_seed(seed)
    np.random.seed(seed)  # its 1×1 convolutions draw their noise from NumPy
    with warnings.catch_warnings():  # the port predates torch.nn.utils.parametrizations.weight_norm
        warnings.filterwarnings("ignore", "`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
        model = FlowPlusPlus(**arguments)
    for module in model.modules():
        if isinstance(module, GatedAttn):
            module.num_heads = heads
    return model


def genkit_passes(draw) -> float:
    """Evaluations of logit F per searched element in one call of ``draw``, averaged over every search."""
    from genkit_plugins.flowpp.inverse import ScaledSums

    evaluate, start = ScaledSums.excess_and_slope, ScaledSums.__dict__["at"]
    counts = {"evaluated": 0, "elements": 0}

    def counted_evaluation(self, z, inverse_scales):
        counts["evaluated"] += z.shape[:-1].numel()
        return evaluate(self, z, inverse_scales)

    def counted_start(cls, log_weights, u):
        counts["elements"] += u.numel()
        return start.__func__(cls, log_weights, u)

    ScaledSums.excess_and_slope, ScaledSums.at = counted_evaluation, classmethod(counted_start)
    try:
        draw()
    finally:
        ScaledSums.excess_and_slope, ScaledSums.at = evaluate, start
    return counts["evaluated"] / counts["elements"]


def port_passes(draw, couplings: int) -> float:
    """Bisection passes per coupling in one call of ``draw``: the port's ``mixture_log_cdf`` calls, counted."""
    from models.flowplusplus import log_dist

    original, calls = log_dist.mixture_log_cdf, [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    log_dist.mixture_log_cdf = counted
    try:
        finite = bool(torch.isfinite(draw()).all())
    finally:
        log_dist.mixture_log_cdf = original
    if not finite:
        print("warning: the port's samples are not all finite, and its bisection may have stopped early")
    return calls[0] / couplings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a flowpp recipe, e.g. recipes/flowpp-digits.toml")
    parser.add_argument("--port", type=Path, required=True, help="a local checkout of chrischute/flowplusplus")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--weights", default=None, help="genkit's trained weights: a model or run directory")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls of each (default 5)")
    parser.add_argument("--samples", type=int, default=64, help="images each call draws (default 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    recipe = load_recipe(args.recipe, [*args.overrides, *FLOAT32_EAGER])
    arguments, heads = port_arguments(recipe)
    bench = prepare_step(recipe, device, batch=recipe.train.batch_size, use_data=False, weights=args.weights)
    genkit_model = bench.ema.model.eval()
    port_model = build_port(args.port.resolve(), arguments, heads, recipe.train.seed)
    with torch.no_grad():  # the port's ActNorms initialise themselves on their first batch in training mode
        port_model.train()
        port_model(bench.images.permute(0, 3, 1, 2).float() / 255.0)
    port_model.eval()

    def draw_genkit():
        return genkit_model.sample(args.samples, temperature=1.0, sampler="inverse")

    @torch.no_grad()
    def draw_port():
        z = torch.randn(args.samples, *arguments["in_shape"])
        return torch.sigmoid(port_model(z, reverse=True)[0])

    draw_genkit()
    genkit_evaluations = genkit_passes(draw_genkit)
    passes = port_passes(draw_port, sum(sum(scale) for scale in arguments["scales"]))
    times: dict[str, list[float]] = {"genkit": [], "port": []}
    draws = {"genkit": draw_genkit, "port": draw_port}
    for round_ in range(args.rounds):
        for side in ("genkit", "port") if round_ % 2 == 0 else ("port", "genkit"):
            times[side].append(1000 * elapsed_seconds(draws[side], device, 1))
        print(f"round {round_ + 1}  genkit {times['genkit'][-1]:9.1f} ms  port {times['port'][-1]:9.1f} ms", flush=True)

    genkit_ms, port_ms = statistics.median(times["genkit"]), statistics.median(times["port"])
    result = {
        "recipe": recipe.source,
        "device": device_name(device),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "threads": torch.get_num_threads(),
        "samples": args.samples,
        "rounds": args.rounds,
        "genkit_parameters": sum(p.numel() for p in genkit_model.parameters()),
        "port_parameters": sum(p.numel() for p in port_model.parameters()),
        "port_arguments": {**arguments, "heads": heads},
        "weights": args.weights,
        "genkit_inverse_passes_at_most": NEWTON_PASSES[torch.float32],
        "genkit_inverse_evaluations_per_element": genkit_evaluations,
        "port_inverse_passes_per_coupling": passes,
        "genkit_ms": times["genkit"],
        "port_ms": times["port"],
        "genkit_median_ms": genkit_ms,
        "port_median_ms": port_ms,
        "ratio_port_over_genkit": port_ms / genkit_ms,
    }
    print(f"{recipe.source}: {args.samples} samples, {result['device']}, torch {result['torch']}, {result['date']}")
    print(f"port arguments: {result['port_arguments']}")
    print(
        f"parameters: genkit {result['genkit_parameters']:,}, port {result['port_parameters']:,}; inverse passes "
        f"per coupling: genkit {genkit_evaluations:.1f} per element on average (at most "
        f"{NEWTON_PASSES[torch.float32]}), port {passes:.1f}"
    )
    print(
        f"median of {args.rounds}: genkit {genkit_ms:.1f} ms, port {port_ms:.1f} ms: "
        f"port/genkit {result['ratio_port_over_genkit']:.2f}"
    )
    if args.json_path:
        write_json(args.json_path, result)


if __name__ == "__main__":
    try:
        main()
    except GenkitError as exc:  # one line, as the genkit CLI prints them
        sys.exit(f"flowpp_port_side_by_side: {exc}")
