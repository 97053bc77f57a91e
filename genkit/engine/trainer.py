"""``genkit run``: train the model a recipe describes, on one device or many.

Single process::

    genkit run recipes/digits.toml                      # the embedded data set, CPU, minutes
    genkit run recipes/cifar10.toml                     # fetches CIFAR-10 (163 MiB) once into ~/.cache/genkit
    genkit run recipes/cifar10.toml --set data.root=~/data/cifar-10-python.tar.gz
    genkit run recipes/cifar10.toml --resume runs/cifar10

Many GPUs (and machines) through torchrun; ``train.batch_size`` is per process::

    torchrun --standalone --nproc_per_node=8 -m genkit run recipes/cifar10.toml

The loop: a model's data-dependent initialisation on a fresh run, then AdamW on the recipe's
learning-rate schedule with gradient clipping and skipped updates (:mod:`genkit.engine.step`), and an
EMA of the weights used for every evaluation, sample and export.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import attrs
import click
import torch

from genkit import rundirs
from genkit.capabilities import DataDependentInit, Invertible
from genkit.engine import checkpoint
from genkit.engine.baselines import trivial_baselines
from genkit.engine.data import Batches, random_images, to_device, train_loader
from genkit.engine.distributed import Distributed, setup, teardown
from genkit.engine.evaluate import evaluate_dataset, not_finite
from genkit.engine.metrics import MetricsLog, Progress
from genkit.engine.pictures import save_pictures
from genkit.engine.recompute import apply_recompute
from genkit.engine.report import print_summary
from genkit.engine.runs import check_cuda_graph, choose_run_dir
from genkit.engine.signals import StopRequest
from genkit.engine.step import EMA, adapt_loaded_optimizer, build_optimizer, training_step
from genkit.errors import CheckpointError, ConfigError, DataError, DivergedError, first_line, printable
from genkit.fileio import make_folder, write_json
from genkit.interfaces import nats_to_bits
from genkit.models import build_model
from genkit.pairing import check_evaluation_settings, check_pairing, check_reported_split
from genkit.pretrained import clear_outputs
from genkit.recipe import Recipe, save_recipe


@attrs.define
class TrainResult:
    run_dir: Path
    step: int
    model: torch.nn.Module  # the weights being optimised
    ema_model: torch.nn.Module  # their EMA: what is evaluated, sampled and exported
    final: dict[str, Any] | None = None  # the final evaluation and baselines, when the run reached train.steps


def train(
    recipe: Recipe, *, run_dir: str | Path | None = None, resume: str | Path | None = None, overwrite: bool = False
) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (default ``<train.out_dir>/<recipe name>``), or continue the run in
    ``resume``; ``overwrite`` replaces the run or model ``run_dir`` already holds."""
    context = setup()
    try:
        return Trainer(recipe, context, run_dir=run_dir, resume=resume, overwrite=overwrite).run()
    finally:
        # the DistributedDataParallel wrapper lives in reference cycles: freed only after its process
        # group was destroyed, it makes the process abort at exit ("terminate called without an active
        # exception", in about one run in eight with gloo)
        gc.collect()
        teardown(context)


class Trainer:
    def __init__(self, recipe: Recipe, context: Distributed, *, run_dir=None, resume=None, overwrite=False):
        self.recipe, self.context, self.overwrite = recipe, context, overwrite
        try:  # train.global_batch fixes an update's images: on this many processes, this many micro-batches
            self.config = recipe.train.for_processes(context.world_size)
        except ConfigError as exc:
            raise ConfigError(f"{recipe.origin('train')}: {exc}") from None
        chosen, self.run_dir_option = (
            choose_run_dir(recipe, run_dir, resume, overwrite) if context.is_main else (None, None)
        )
        self.run_dir = Path(context.broadcast(str(chosen) if context.is_main else None))
        self.run_dir_option = context.broadcast(self.run_dir_option)  # what named it, for errors about it
        self.resuming = resume is not None
        check_cuda_graph(recipe, context)
        self.dataset = recipe.data.build("dataset")
        torch.manual_seed(self.config.seed)  # the same initial weights on every rank
        self.model = build_model(recipe, context.device)
        check_pairing(self.model, self.dataset, recipe.data.name, where=recipe.origin())
        check_reported_split(self.dataset, recipe.data.name, recipe.eval.split, where=recipe.origin("eval"))
        check_evaluation_settings(self.model, recipe)
        if self.config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if not self.resuming and isinstance(self.model, DataDependentInit):
            self._initialize()
        self.ema = EMA(self.model, self.config.ema_rate)  # a copy of the (initialised) weights
        self.optimizer, self.scheduler = build_optimizer(self.model, self.config)
        apply_recompute(
            self.model,
            self.config.activation_checkpointing,
            f"{recipe.origin('train')}: train.activation_checkpointing",
        )
        self.step, self.skipped_updates = 0, 0
        self.interval: torch.Tensor | None = None  # restored sums of an interrupted logging interval
        torch.manual_seed(self.config.seed * 1_000_003 + 1 + context.rank)  # latents differ between ranks
        if self.resuming:
            self._restore()
        self.global_batch = self.config.batch_size * self.config.accumulate * context.world_size  # images per update

    # --- set-up ---------------------------------------------------------------------------------

    def _initialize(self) -> None:
        """The model's data-dependent initialisation on ``train.init_images`` training images (rank 0's, broadcast)."""
        images = random_images(self.dataset.split("train"), self.config.init_images, seed=self.config.seed)
        images = to_device(images, self.context.device)
        self.model.train()
        with torch.no_grad():
            self.model.initialize(images)
        self.context.broadcast_tensors_([*self.model.parameters(), *self.model.buffers()])

    def _restore(self) -> None:
        latest = rundirs.latest_checkpoint(self.run_dir)
        state = checkpoint.load(latest, trained=self.model, ema_model=self.ema.model)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{latest / checkpoint.STATE_NAME}: its optimizer state does not fit the model ({first_line(exc)}); "
                "the checkpoint is damaged"
            ) from None
        adapt_loaded_optimizer(self.optimizer, self.scheduler, self.config)
        self.step, self.skipped_updates = int(state["step"]), int(state["skipped_updates"])
        # the figures of a logging interval the checkpoint interrupted (all ranks' together, carried by rank 0)
        interval = state.get("interval")
        if (
            interval is not None
            and self.context.is_main
            and tuple(interval.shape) == (3 + len(self.model.objective.parts),)
        ):
            self.interval = interval.to(self.context.device)
        rng = state["rng"]
        if len(rng) == self.context.world_size:
            checkpoint.set_rng_state(rng[self.context.rank], self.context.device)
        elif self.context.is_main:
            click.echo(
                f"resuming {len(rng)}-process run with {self.context.world_size} processes: "
                "latents draw new random numbers",
                err=True,
            )
        if self.context.is_main:
            click.echo(f"resuming from {latest} (step {self.step})", err=True)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        context, config = self.context, self.config
        if self.resuming and self.step >= config.steps:
            finished = self._finished_results()
            if finished is not None:
                return finished
        log = None
        if context.is_main:
            if self.overwrite:  # only now, when the recipe has built: a mistake in it leaves the old run as it was
                clear_outputs(self.run_dir)
            make_folder(self.run_dir, self.run_dir_option)
            log = MetricsLog(self.run_dir, resume_step=self.step if self.resuming else None)  # damage fails here
            save_recipe(self.recipe, self.run_dir)
        context.barrier()
        forward, no_sync = context.wrap(self.model)
        if config.compile:
            forward = torch.compile(forward)
        step_fn = training_step(forward, self.model, self.optimizer, self.ema, config, context, no_sync=no_sync)
        batches = Batches(
            train_loader(
                self.dataset.split("train"),
                config.batch_size,
                accumulate=config.accumulate,
                seed=config.seed,
                start=self.step,
                num_workers=config.num_workers,
                device=context.device,
                rank=context.rank,
                world_size=context.world_size,
            )
        )
        parts = self.model.objective.parts
        progress = Progress(config.steps, self.step, enabled=context.is_main, objective=self.model.objective)
        device = context.device
        # over applied steps: loss, each part, grad norm; then how many were applied
        sums = torch.zeros(3 + len(parts), device=device) if self.interval is None else self.interval
        skipped_total = torch.full((), float(self.skipped_updates), device=device)
        final = None
        try:
            with StopRequest() as stop:
                while self.step < config.steps:
                    out = step_fn(to_device(next(batches), device))
                    self.scheduler.step()
                    self.step += 1
                    applied = 1.0 - out["skipped"]
                    one = torch.ones_like(applied)
                    values = torch.cat([out["loss"][None], out["parts"], out["grad_norm"].float()[None], one[None]])
                    sums += torch.where(applied > 0, values, torch.zeros_like(values))
                    skipped_total += out["skipped"]
                    progress.advance()
                    last = self.step == config.steps
                    # alone, a signal is acted on at once; under DDP the ranks agree at logging steps
                    stopping = stop.signal is not None and not context.enabled
                    if self.step % config.log_every == 0 or last:
                        self._log(sums, skipped_total, progress, log)
                        sums.zero_()
                        if context.enabled:
                            flag = torch.tensor(float(stop.signal is not None), device=device)
                            stopping = bool(context.all_reduce_(flag, "max").item())
                    validating = self.step % config.eval_every == 0 or last
                    if validating:  # the pictures first: the checkpoint's card shows its step's samples
                        self._draw_pictures()
                    if self.step % config.checkpoint_every == 0 or last or stopping:
                        self._checkpoint(skipped_total, sums)
                    if validating:  # after the checkpoint: a crash or a wait in the figures loses no step
                        self._validate(log)
                    if stopping and not last:
                        progress.close()
                        if context.is_main:
                            click.echo(
                                f"stopped by a signal at step {self.step}; checkpoint written; "
                                f"continue with {rundirs.resume_option(self.run_dir)}",
                                err=True,
                            )
                        raise KeyboardInterrupt
            batches.close()
            progress.close()
            if self.step >= config.steps:
                final = self._final_evaluation(log)
        except OSError as exc:  # the disk refused a write of the run (its metrics, samples, results): where it stands
            if exc.filename is None or not Path(exc.filename).is_relative_to(self.run_dir):
                raise
            raise checkpoint.write_refused(exc, self.run_dir) from None
        finally:
            batches.close()  # a loader worker left behind would keep the process from ever exiting
            progress.close()
            if log is not None:
                log.close()
        return TrainResult(self.run_dir, self.step, self.model, self.ema.model, final)

    def _finished_results(self) -> TrainResult | None:
        """A resumed run that already reached ``train.steps`` and has its results: said so, and nothing redone."""
        try:
            final = json.loads((self.run_dir / rundirs.RESULTS_NAME).read_text())
        except (OSError, ValueError):  # missing or damaged: the final evaluation runs again
            return None
        if not isinstance(final, dict) or final.get("step") != self.step:
            return None
        if self.context.is_main:
            click.echo(
                f"{self.run_dir} already reached step {self.step} (train.steps = {self.config.steps}); nothing to "
                f"train: raise train.steps to continue it",
                err=True,
            )
            print_summary(final, self.run_dir, self.model.objective)
        return TrainResult(self.run_dir, self.step, self.model, self.ema.model, final)

    def _log(self, sums: torch.Tensor, skipped_total: torch.Tensor, progress: Progress, log: MetricsLog | None) -> None:
        """One ``train`` record: the means over the updates applied since the last one, ``null`` when none was."""
        totals = self.context.all_reduce_(sums.clone())
        totals /= self.context.world_size  # every rank counted the same applied steps
        *figures, grad_norm, applied = totals.tolist()  # the host sync, once per interval
        applied = round(applied)
        self.skipped_updates = int(skipped_total.item())
        names = ("loss", *self.model.objective.parts)
        record = {
            "step": self.step,
            "split": "train",
            **{
                f"{name}_bpd": nats_to_bits(value / applied) if applied else None for name, value in zip(names, figures)
            },
            "grad_norm": grad_norm / applied if applied else None,
            "updates_applied": applied,
            "skipped_updates": self.skipped_updates,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "images_per_s": progress.images_per_second(self.step, self.global_batch),
        }
        if log is not None:
            log.write(record)
            progress.show(record)
        self._require_finite_weights()

    def _require_finite_weights(self) -> None:
        """Stop the run, in one line, once an update has made any weight NaN or infinite: nothing after is saved."""
        checkpoint.require_finite_weights({"trained": self.model, "EMA": self.ema.model}, self.step, self.run_dir)

    def _evaluation_rng(self):
        """Evaluation draws its own random numbers and leaves the training stream exactly where it was."""
        devices = [self.context.device] if self.context.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _draw_pictures(self) -> None:
        """The EMA model's samples and pictures of this step, under RUN/samples (main process)."""
        self._require_finite_weights()
        if self.context.is_main:
            with self._evaluation_rng():
                torch.manual_seed(self.config.seed + 7919)
                folder, device = self.run_dir / rundirs.SAMPLES, self.context.device
                save_pictures(
                    self.ema.model,
                    self.dataset.split("validation"),
                    folder,
                    step=self.step,
                    config=self.config,
                    device=device,
                )

    def _validate(self, log: MetricsLog | None) -> None:
        """The EMA model's figures on the validation images, logged."""
        with self._evaluation_rng():
            torch.manual_seed(self.config.seed + 7919)
            result = evaluate_dataset(
                self.ema.model,
                self.dataset.split("validation"),
                batch_size=self.recipe.eval.batch_size,
                max_images=self.recipe.eval.validation_max_images,
                inverse_error=isinstance(self.ema.model, Invertible),  # an invertible model's worst round-trip error
                seed=self.config.seed + 7919,
                progress=False,
                context=self.context,
            )
        if log is not None:
            log.write({"step": self.step, "split": "validation", **result})

    def _checkpoint(self, skipped_total: torch.Tensor, sums: torch.Tensor) -> None:
        self._require_finite_weights()
        self.skipped_updates = int(skipped_total.item())
        # the logging interval so far, every rank's together, so a resumed run's next record is the one it would
        # have been; rank 0 carries it, the others restart from zero
        interval = self.context.all_reduce_(sums.clone()).cpu()
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "skipped_updates": self.skipped_updates,
            "rng": self.context.gather(checkpoint.rng_state(self.context.device)),
            "world_size": self.context.world_size,
            "interval": interval,
        }
        if self.context.is_main:
            checkpoint.save(
                self.run_dir,
                step=self.step,
                trained=self.model,
                ema_model=self.ema.model,
                recipe=self.recipe,
                state=state,
                keep=self.config.keep_checkpoints,
            )
        self.context.barrier()

    def _final_evaluation(self, log: MetricsLog | None) -> dict[str, Any]:
        """The EMA model on ``eval.split`` (test by default), beside the trivial baselines, printed and saved."""
        self._require_finite_weights()
        split = self.recipe.eval.split
        with self._evaluation_rng():
            torch.manual_seed(self.config.seed + 104729)
            result = evaluate_dataset(
                self.ema.model,
                self.dataset.split(split),
                batch_size=self.recipe.eval.batch_size,
                max_images=self.recipe.eval.max_images,
                importance_samples=self.recipe.eval.importance_samples,
                seed=self.config.seed + 104729,
                progress=self.context.is_main,
                context=self.context,
            )
        problem = not_finite(result)
        if problem:
            saved = rundirs.checkpoint_dirs(self.run_dir)
            raise DivergedError(
                f"step {self.step}: the EMA model's {split} figures are not finite ({problem}) although its weights "
                "are: the model has diverged, so no result is written"
                + (f"; its checkpoints are kept (the latest is {saved[-1]})" if saved else "")
                + "; lower train.lr, train.weight_decay or train.grad_clip and train again"
            )
        final: dict[str, Any] = {
            "step": self.step,
            "split": split,
            **result,
            "updates_applied": self.step - self.skipped_updates,
        }
        if self.context.is_main:
            try:
                final["baselines"] = trivial_baselines(
                    self.dataset.split("train"),
                    None if self.dataset.validation_is_test else self.dataset.split("validation"),
                    self.dataset.split(split),
                    self.dataset.bits,
                    max_images=self.recipe.eval.max_images,
                )
            except DataError as exc:  # an image that cannot be read now (its depth and type were checked at the start)
                click.echo(f"trivial baselines not computed: {printable(exc)}", err=True)
            log.write({**final, "split": f"final-{split}"})
            write_json(self.run_dir / rundirs.RESULTS_NAME, final)
            print_summary(final, self.run_dir, self.model.objective)
        return final
