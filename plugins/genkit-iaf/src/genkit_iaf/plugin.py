"""genkit's entry point for this distribution: registers the ``iaf`` latent family through the ``genkit`` hooks."""

from genkit.hookspecs import hookimpl
from genkit_iaf.posterior import IafPosterior, IafSettings


@hookimpl
def genkit_register_latents(register):
    register(
        "iaf",
        IafPosterior,
        config=IafSettings,
        description="Gaussian posterior followed by an inverse autoregressive flow (Kingma et al. 2016)",
        example=IafSettings(steps=2, hidden=8, context=2),
    )
