"""Contract tests every plugin gets for free.

``test_contracts.py`` (components and data sets, and the contract modules of kinds that plugins
add) and ``test_model_contracts.py`` (models and their capabilities) in this package are
parametrised over every registered plugin of each kind, so a new plugin is tested the moment it
registers. A plugin author runs them against an installed plugin with::

    GENKIT_LOAD_PLUGINS=myplugin python -m pytest --pyargs genkit.testing

(``GENKIT_LOAD_PLUGINS`` names the entry points to load; the built-in plugins are always there.)
"""

from __future__ import annotations

import pytest
import torch


def plugin_params(kind: str) -> list:
    """One ``pytest.param(spec)`` per registered plugin of ``kind``, with an id ``provider:name``."""
    from genkit.registry import get_registry

    return [pytest.param(spec, id=f"{spec.provider}:{spec.name}") for spec in get_registry().specs(kind)]


def example_settings(spec):
    """The settings a contract test builds ``spec`` with: its ``example`` (called, if it is a function), else the
    defaults."""
    example = spec.example
    if example is None:
        return spec.config()
    if callable(example) and not isinstance(example, spec.config):
        return example()
    return example


def agree(estimates: torch.Tensor, reference: torch.Tensor) -> bool:
    """The means over the first axis differ by at most five standard errors (seeds are fixed; 5σ leaves room to change
    them)."""
    error = (estimates.var(0) / len(estimates) + reference.var(0) / len(reference)).sqrt()
    return bool(((estimates.mean(0) - reference.mean(0)).abs() <= 5 * error + 1e-9).all())


def gradients_under(
    model: torch.nn.Module, images: torch.Tensor, policy: str, *, seed: int = 0, generator: bool = False
) -> tuple[float, dict[str, torch.Tensor], tuple]:
    """One forward and backward pass of ``model`` on ``images`` with activation-checkpointing ``policy``.

    Random numbers come from the global generator seeded with ``seed`` and, with ``generator``, from a
    ``torch.Generator`` seeded alike and passed to the model. Returns the loss, every parameter's gradient, and the
    next number each generator would draw (where the pass left them).
    """
    from genkit.engine.recompute import recomputing

    torch.manual_seed(seed)
    passed = torch.Generator().manual_seed(seed) if generator else None
    model.zero_grad(set_to_none=True)
    with recomputing(model, policy, "the policy under test"):
        loss = model(images, generator=passed).loss
        loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    after = (torch.rand(()).item(), None if passed is None else torch.rand((), generator=passed).item())
    return loss.item(), grads, after
