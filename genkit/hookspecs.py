"""The extension points of genkit: one ``genkit_register_*`` hook per kind of component, and three more.

Each hook receives a ``register`` callback. The six built-in kinds each have their own hook::

    register(name, factory, config=None, description="", example=None, **info)

``factory`` builds the component (usually the class itself); ``config`` is a frozen attrs class
describing the settings a recipe may give it (``None`` means "no settings"); ``example`` is an
instance of ``config`` small enough for the contract tests in ``genkit.testing`` (default:
``config()``), or a function of no arguments that returns one, for settings whose validation looks
up other plugins (the registry is not ready while plugins register); ``description`` defaults to the
first line of the factory's docstring; ``info`` holds the facts a kind asks for (a data set's
``display_name`` and ``hub_dataset``).

A plugin may add a kind of its own (``genkit_register_kinds``), register components of any kind
(``genkit_register_components``) and add commands to the command line
(``genkit_register_commands``). The built-in plugins in ``genkit_plugins`` implement these hooks
exactly as a third-party package does; third-party packages are found through the ``genkit``
entry-point group.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("genkit")
hookimpl = pluggy.HookimplMarker("genkit")


@hookspec
def genkit_register_likelihoods(register):
    """Register output distributions over discrete images (``genkit.interfaces.Likelihood``)."""


@hookspec
def genkit_register_latents(register):
    """Register latent distribution families used as priors or posteriors (``genkit.interfaces.LatentFamily``)."""


@hookspec
def genkit_register_blocks(register):
    """Register network blocks (``genkit.interfaces.Block``)."""


@hookspec
def genkit_register_resamplers(register):
    """Register upsamplers and downsamplers (``genkit.interfaces.Upsampler`` / ``Downsampler``)."""


@hookspec
def genkit_register_models(register):
    """Register generative models (``genkit.interfaces.GenerativeModel``)."""


@hookspec
def genkit_register_datasets(register):
    """Register image data sets (``genkit.interfaces.ImageDataset``); ``info``: ``display_name``, ``hub_dataset``."""


@hookspec
def genkit_register_kinds(register):
    """Add kinds of component: ``register(kind, interface, description="", info=(), contracts=None)``.

    ``interface`` is the base class components of the kind derive from; ``info`` the names of the
    facts each component of the kind may give at registration; ``contracts`` the dotted name of a
    module of pytest tests, parametrised over ``genkit.testing.plugin_params(kind)``, that
    ``genkit.testing`` runs for every component of the kind.
    """


@hookspec
def genkit_register_components(register):
    """Register components of any kind, a plugin's own included: ``register(kind, name, factory, …)``."""


@hookspec
def genkit_register_commands(register):
    """Add command-line commands: ``register(command, group=None)``.

    ``command`` is a ``click.Command``; ``group`` names a command group of the ``genkit`` command
    to add it under (``"convert"`` for checkpoint converters), or ``None`` for a top-level command.
    """
