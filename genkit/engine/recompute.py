"""Activation checkpointing: the units a policy selects keep only their inputs and run again in the backward pass.

Each selected unit's ``forward`` is replaced, on that module instance only, by :class:`Recomputed`,
which calls ``torch.utils.checkpoint`` (non-reentrant). Nothing else about the model changes: its
parameter names, its state dict and every other module stay as they were, and the engine's other
wrappers (``torch.compile``, DistributedDataParallel) wrap the model as before.

The recomputation must give exactly the values of the first pass. ``torch.utils.checkpoint``
restores the global CPU and CUDA generators before recomputing (``preserve_rng_state``), so dropout
masks and latents drawn from them repeat; a ``torch.Generator`` passed to the unit as an argument is
restored here the same way, and put back where the first pass left it once the recomputation is
done, so the draws after it are unchanged too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.checkpoint import checkpoint

from genkit.capabilities import Recomputable, RecomputableUnit, require
from genkit.errors import ConfigError
from genkit.interfaces import GenerativeModel
from genkit.recompute import RecomputePolicy, parse_policy


class Recomputed:
    """A unit's ``forward`` that autograd recomputes in backward instead of keeping what it saves."""

    def __init__(self, forward: Callable[..., Any]):
        self.forward = forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():  # nothing is saved without gradients, so nothing to recompute
            return self.forward(*args, **kwargs)
        # every tensor, however nested (a pair, a keyword), becomes one argument of checkpoint, which then keeps it as a
        # saved tensor (seen by saved-tensor hooks, which genkit bench counts with; checked for in-place changes) and
        # finds the devices whose generators it must restore from it
        leaves, structure = tree_flatten((args, kwargs))

        def forward(*values: Any) -> Any:
            inner_args, inner_kwargs = tree_unflatten(list(values), structure)
            return self.forward(*inner_args, **inner_kwargs)

        generators = [value for value in leaves if isinstance(value, torch.Generator)]
        function = forward if not generators else _replaying(forward, generators)
        return checkpoint(function, *leaves, use_reentrant=False, preserve_rng_state=True)


def _replaying(forward: Callable[..., Any], generators: list[torch.Generator]) -> Callable[..., Any]:
    """``forward``, whose every call after the first draws from ``generators`` as the first did."""
    states = [generator.get_state() for generator in generators]
    calls = 0

    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return forward(*args, **kwargs)
        later = [generator.get_state() for generator in generators]
        for generator, state in zip(generators, states):
            generator.set_state(state)
        try:
            return forward(*args, **kwargs)
        finally:
            for generator, state in zip(generators, later):
                generator.set_state(state)

    return run


def selected_units(model: GenerativeModel, policy: RecomputePolicy | str, what: str) -> list[RecomputableUnit]:
    """The units of ``model`` that ``policy`` recomputes; one line when the policy needs units the model lacks.

    ``what`` names the setting or option the policy came from, for that line.
    """
    policy = parse_policy(policy) if isinstance(policy, str) else policy
    if policy.off:
        return []
    require(model, Recomputable, f"{what} = {policy.text!r}")
    units = model.recomputable_units()
    chosen = [unit for unit in units if policy.selects(unit.resolution)]
    if not chosen:
        resolutions = ", ".join(str(r) for r in sorted({unit.resolution for unit in units}, reverse=True))
        raise ConfigError(
            f"{what} = {policy.text!r} selects none of the {len(units)} units of a {type(model).__name__}"
            + (f" (their resolutions: {resolutions})" if units else "")
        )
    return chosen


def apply_recompute(model: GenerativeModel, policy: RecomputePolicy | str, what: str) -> list[RecomputableUnit]:
    """Make the units ``policy`` selects recompute in backward, from now on; returns them."""
    units = selected_units(model, policy, what)
    for unit in units:
        if not isinstance(unit.module.__dict__.get("forward"), Recomputed):
            unit.module.forward = Recomputed(unit.module.forward)
    return units


def remove_recompute(model: torch.nn.Module) -> None:
    """Undo :func:`apply_recompute`: every module of ``model`` keeps what it saves again."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), Recomputed):
            del module.forward


@contextmanager
def recomputing(model: GenerativeModel, policy: RecomputePolicy | str, what: str) -> Iterator[list[RecomputableUnit]]:
    """Only the units ``policy`` selects recompute for the duration of the context (a benchmark comparing
    policies); then the model recomputes what it did before."""
    before = {
        module: module.forward for module in model.modules() if isinstance(module.__dict__.get("forward"), Recomputed)
    }
    remove_recompute(model)
    try:
        yield apply_recompute(model, policy, what)
    finally:
        remove_recompute(model)
        for module, forward in before.items():
            module.forward = forward
