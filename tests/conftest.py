"""Test-suite set-up: no third-party plugin is discovered unless a test asks, and torch stays on few threads."""

from __future__ import annotations

import os
import tempfile

# Before genkit is imported anywhere: entry-point discovery is kept out of the suite (tests opt in).
os.environ["GENKIT_LOAD_PLUGINS"] = ""
# Nothing the suite builds may read or fill the user's data cache: a data set that fetches itself lands here.
os.environ["GENKIT_CACHE"] = tempfile.mkdtemp(prefix="genkit-test-cache-")


import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from locations import FIXTURES, ROOT  # noqa: E402,F401  (re-exported for older imports)


@pytest.fixture
def fresh_registry():
    """A registry rebuilt for this test and forgotten afterwards."""
    from genkit.registry import reset_registry

    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def toy_registry():
    """The built-in plugins plus ``tests/toy_plugins.py`` (a model ``toy`` and a latent ``toy-latent``)."""
    import toy_plugins

    from genkit.registry import Registry, make_plugin_manager, reset_registry, set_registry

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(toy_plugins, name="toy_plugins")
    registry = Registry(pm)
    set_registry(registry)
    yield registry
    reset_registry()
