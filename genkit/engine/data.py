"""Feeding batches: a resumable, rank-sharded sampler and loaders that keep the accelerator busy.

Training draws epoch after epoch of seeded permutations of the training split. Batch ``b`` of
the run (counting from the first step) is a fixed function of ``(seed, b)``, and rank ``r`` of
``W`` takes the ``r``-th slice of it, so resuming at step ``s`` only needs ``s``, and ``W``
processes of batch ``B`` see exactly the images one process of batch ``W·B`` sees.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from genkit.errors import ConfigError, GenkitError


class EpochBatchSampler:
    """Index batches for one rank, forever, starting at global batch ``start``.

    A rank's batch is its ``accumulate`` micro-batches of ``batch_size`` images, one after the other:
    with one process they are the first, second, … ``batch_size`` images of the global batch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        accumulate: int = 1,
    ):
        self.global_batch = batch_size * accumulate * world_size
        if n < self.global_batch:
            raise ConfigError(
                f"train.batch_size: {batch_size} per micro-batch × {accumulate} micro-batches (train.accumulate) × "
                f"{world_size} processes = {self.global_batch} images per update, but the training split has only {n}"
            )
        batch_size *= accumulate
        self.n, self.batch_size, self.seed, self.rank, self.start = n, batch_size, seed, rank, start
        self.batches_per_epoch = n // self.global_batch  # the incomplete last batch of each epoch is dropped

    def permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        while True:
            epoch, within = divmod(batch, self.batches_per_epoch)
            order = self.permutation(epoch)
            for position in range(within, self.batches_per_epoch):
                first = position * self.global_batch + self.rank * self.batch_size
                yield order[first : first + self.batch_size].tolist()
            batch = (epoch + 1) * self.batches_per_epoch


class FailedBatch:
    """A batch a data set could not give, carrying its error to the main process as a value.

    Raised inside a loader worker, the error would reach the main process re-raised inside a copy of
    the worker's traceback; carried as a value, :class:`Batches` raises the data set's own one line.
    """

    def __init__(self, error: GenkitError):
        self.kind, self.message = type(error), str(error)

    def error(self) -> GenkitError:
        error = self.kind.__new__(self.kind)  # not kind(message): an error class may take other arguments
        Exception.__init__(error, self.message)
        return error


class Reporting(Dataset):
    """``dataset``, whose :class:`GenkitError` for a batch becomes a :class:`FailedBatch` instead of an exception."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: list[int]):
        try:
            if hasattr(self.dataset, "__getitems__"):
                return self.dataset.__getitems__(indices)
            return [self.dataset[i] for i in indices]
        except GenkitError as exc:
            return FailedBatch(exc)


def collate(items: torch.Tensor | Sequence[torch.Tensor] | FailedBatch) -> torch.Tensor | FailedBatch:
    """A batch ``(B, H, W, C)`` ``uint8``: data sets with ``__getitems__`` already return one tensor."""
    if isinstance(items, (torch.Tensor, FailedBatch)):
        return items
    return torch.stack(list(items))


class Batches:
    """The batches of a loader, for as long as they are wanted; :meth:`close` ends its worker processes for certain.

    A data set's own error (a file it cannot read, an image of the wrong size) is raised here as its
    one line. Closing shuts the workers down the loader's way, then kills any that is still alive:
    each ignores the first SIGTERM (:func:`leave_stop_signals_to_the_main_process`), which may be
    the only one it gets, and a worker left behind would keep the interpreter from exiting.
    """

    def __init__(self, loader: DataLoader):
        self._iterator = iter(loader)

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> torch.Tensor:
        batch = next(self._iterator)
        if isinstance(batch, FailedBatch):
            raise batch.error()
        return batch

    def close(self, grace: float = 5.0) -> None:
        workers = list(getattr(self._iterator, "_workers", ()))
        shutdown = getattr(self._iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(grace)

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """``worker_init_fn`` of every loader: a worker ignores Ctrl-C and the first SIGTERM.

    Ctrl-C in a terminal, ``timeout`` and batch schedulers signal the whole process group. The
    main process answers by finishing its step and writing a checkpoint, for which it may still
    need batches; a worker killed by the same signal would instead make the loader raise and the
    run end without one. The main process shuts the workers down itself afterwards (and a second
    SIGTERM, such as the loader's own ``terminate()``, still ends a worker).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _default_after_the_first_sigterm)


def _default_after_the_first_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def train_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    start: int,
    num_workers: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    accumulate: int = 1,
) -> DataLoader:
    sampler = EpochBatchSampler(
        len(dataset), batch_size, seed=seed, rank=rank, world_size=world_size, start=start, accumulate=accumulate
    )
    return DataLoader(
        Reporting(dataset),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",  # page-locked batches let the copy to the GPU overlap compute
        prefetch_factor=4 if num_workers else None,
        worker_init_fn=leave_stop_signals_to_the_main_process,
        # the loader draws its workers' base seed from this generator, not from the global RNG,
        # whose stream (latent noise) must be the same whether or not the run was resumed
        generator=torch.Generator().manual_seed(seed),
    )


class _Shard(torch.utils.data.Sampler):
    def __init__(self, indices: range):
        self.indices = indices

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def eval_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    max_images: int | None,
    num_workers: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """The first ``max_images`` images (all by default), in order; rank ``r`` takes every ``W``-th batch-sized block."""
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    blocks = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    mine = [i for block in blocks[rank::world_size] for i in block]
    return DataLoader(
        Reporting(dataset),
        batch_size=batch_size,
        sampler=_Shard(mine),
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=leave_stop_signals_to_the_main_process,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG alone
    )


def random_images(split: Dataset, n: int, *, seed: int) -> torch.Tensor:
    """``n`` images of ``split`` chosen with ``seed``, ``(n, H, W, C)``: without replacement, unless it holds fewer
    (then with it, as some official training code always draws)."""
    generator = torch.Generator().manual_seed(seed)
    if n <= len(split):
        indices = torch.randperm(len(split), generator=generator)[:n]
    else:
        indices = torch.randint(len(split), (n,), generator=generator)
    return collate([split[int(i)] for i in indices])


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device, non_blocking=True)
