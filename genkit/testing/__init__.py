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
