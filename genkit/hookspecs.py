"""The extension points of genkit: one ``genkit_register_*`` hook per kind of component.

Each hook receives a ``register`` callback::

    register(name, factory, config=None, description="", example=None)

``factory`` builds the component (usually the class itself); ``config`` is a frozen attrs
class describing the settings a recipe may give it (``None`` means "no settings");
``example`` is an instance of ``config`` small enough for the contract tests in
``genkit.testing`` (default: ``config()``); ``description`` defaults to the factory's
docstring's first line. The
built-in plugins in ``genkit_plugins`` implement these hooks exactly as a third-party
package does; third-party packages are found through the ``genkit`` entry-point group.
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
    """Register image data sets (``genkit.interfaces.ImageDataset``)."""
