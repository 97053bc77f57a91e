"""What autograd keeps for the backward pass, counted storage by storage: the count ``genkit bench`` and ``genkit plan``
share.

A forward pass run inside a :class:`SavedTrace` records, through saved-tensor hooks, every tensor
autograd saves for backward: each storage once, however many views of it are saved, the model's
weights left out. What a recomputed unit keeps is seen the same way, because
``torch.utils.checkpoint`` saves the unit's inputs as saved tensors. The count works alike on real
tensors and on fake ones (``FakeTensorMode``), which hold no memory: that is how ``genkit plan``
counts a full-size model in seconds.

Given the model's recomputable units, the trace also notes, for every call of a unit, the storages
it saves itself and the ones it takes as inputs. From one pass without recomputation,
:meth:`SavedTrace.kept` then gives what any activation-checkpointing policy keeps — a recomputed
unit's inputs instead of what it saves, everything else as it is — and :meth:`SavedTrace.peak` the
most that is alive during the backward pass, when a recomputed unit's own tensors come back.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence

import attrs
import torch
from torch.utils._pytree import tree_flatten

from genkit.capabilities import RecomputableUnit


def storage_key(tensor: torch.Tensor) -> int:
    """An identity of ``tensor``'s storage, shared by its views; real and fake tensors alike (no data pointer)."""
    return tensor.untyped_storage()._cdata


@attrs.define
class UnitCall:
    """One call of a unit during the traced pass: the storages it takes as inputs and those it saves itself."""

    unit: int  # its index in the traced units
    start: int  # the trace's clock when the call began
    end: int = -1  # and when it returned
    inputs: set[int] = attrs.field(factory=set)
    own: set[int] = attrs.field(factory=set)


class SavedTrace:
    """A context recording what autograd saves during the forward pass run inside it (see the module's docstring)."""

    def __init__(self, model: torch.nn.Module, units: Sequence[RecomputableUnit] = ()):
        self._weights = {storage_key(p) for p in model.parameters()}
        self._units = list(units)
        self.sizes: dict[int, int] = {}  # storage -> bytes
        self.outside: dict[int, int] = {}  # storage -> clock when saved outside every unit (first time)
        self.calls: list[UnitCall] = []
        self._clock = 0
        self._open: list[UnitCall] = []
        self._alive: list[torch.Tensor] = []  # holds every counted tensor, so that no storage identity is reused
        self._handles: list = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    # --- recording --------------------------------------------------------------------------------

    def _note(self, tensor: torch.Tensor) -> int | None:
        key = storage_key(tensor)
        if key in self._weights:
            return None
        if key not in self.sizes:
            self.sizes[key] = tensor.untyped_storage().nbytes()
            self._alive.append(tensor)
        self._clock += 1
        return key

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = self._note(tensor)
        if key is not None:
            if self._open:
                self._open[-1].own.add(key)
            else:
                self.outside.setdefault(key, self._clock)
        return tensor

    def _enter_unit(self, index: int, args, kwargs) -> None:
        self._clock += 1  # a call starts strictly after the previous one ended: its inputs are not kept before that
        call = UnitCall(index, self._clock)
        leaves, _ = tree_flatten((args, kwargs))
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                key = self._note(leaf)
                if key is not None:
                    call.inputs.add(key)
        self.calls.append(call)
        self._open.append(call)

    def _leave_unit(self, *_) -> None:
        self._open.pop().end = self._clock
        self._clock += 1

    def __enter__(self) -> SavedTrace:
        for index, unit in enumerate(self._units):
            enter = lambda module, args, kwargs, index=index: self._enter_unit(index, args, kwargs)  # noqa: E731
            self._handles.append(unit.module.register_forward_pre_hook(enter, with_kwargs=True))
            self._handles.append(unit.module.register_forward_hook(self._leave_unit))
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # --- what a policy keeps ----------------------------------------------------------------------

    def _bytes(self, keys: Iterable[int]) -> int:
        return sum(self.sizes[key] for key in keys)

    def _kept_since(self, recomputed: set[int]) -> dict[int, int]:
        """Every kept storage and the clock from when it is kept, with the units ``recomputed`` (indices)."""
        since = dict(self.outside)
        for call in self.calls:
            keys, when = (call.inputs, call.start) if call.unit in recomputed else (call.own, call.end)
            for key in keys:
                since[key] = min(since.get(key, when), when)
        return since

    def kept(self, recomputed: Iterable[int] = ()) -> int:
        """Bytes kept for the backward pass when the units ``recomputed`` (indices) keep only their inputs."""
        return self._bytes(self._kept_since(set(recomputed)))

    def peak_terms(self, recomputed: Iterable[int] = ()) -> list[int]:
        """The candidates for the most bytes alive during the backward pass (weight and activation gradients aside).

        First everything kept, alive when the backward starts; then, for each recomputed call in
        forward order, what the forward had kept up to the call's end (what came after it has been
        used and freed when the backward reaches it) and the call's own saved tensors, made again.
        """
        recomputed = set(recomputed)
        since = self._kept_since(recomputed)
        order = sorted(since, key=since.get)
        times = [since[key] for key in order]
        running = list(itertools.accumulate((self.sizes[key] for key in order), initial=0))
        terms = [running[-1]]
        for call in self.calls:
            if call.unit in recomputed:
                before = running[bisect.bisect_right(times, call.end)]
                terms.append(before + self._bytes(call.own - call.inputs))
        return terms

    def peak(self, recomputed: Iterable[int] = ()) -> int:
        """The most bytes alive during the backward pass (:meth:`peak_terms`)."""
        return max(self.peak_terms(recomputed))

    def largest(self, recomputed: Iterable[int] = ()) -> int:
        """Bytes of the largest single storage kept: what the gradient flowing through the network is sized like."""
        return max((self.sizes[key] for key in self._kept_since(set(recomputed))), default=0)


def saved_bytes(model: torch.nn.Module, images: torch.Tensor, autocast) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one loss (weights left out).

    Each storage counts once however many views of it are saved; parameters do not count. Units the
    model recomputes (:mod:`genkit.engine.recompute`) count with their inputs, as they keep them.
    """
    with SavedTrace(model) as trace, autocast:
        loss = model(images).loss
    del loss  # frees the graph: nothing is kept beyond the count
    return trace.kept()
