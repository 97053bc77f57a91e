"""genkit-iaf's tests: entry points stay undiscovered unless a test opts in, as in genkit's own suite."""

from __future__ import annotations

import os

os.environ["GENKIT_LOAD_PLUGINS"] = ""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one intra-op thread is as fast, and far faster when the cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def iaf_registry(monkeypatch):
    """The process registry with the ``iaf`` entry point loaded, as ``GENKIT_LOAD_PLUGINS=iaf`` gives a user."""
    from genkit.registry import get_registry, reset_registry

    monkeypatch.setenv("GENKIT_LOAD_PLUGINS", "iaf")
    reset_registry()
    yield get_registry()
    reset_registry()


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry rebuilt with no entry points loaded (what a user without ``genkit-iaf`` installed gets)."""
    from genkit.registry import reset_registry

    monkeypatch.setenv("GENKIT_LOAD_PLUGINS", "")
    reset_registry()
    yield
    reset_registry()
