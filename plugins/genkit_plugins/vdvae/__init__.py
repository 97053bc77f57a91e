"""The Very Deep VAE (Child 2021, openai/vdvae) as a genkit model plugin ``vdvae``.

``blockstr`` parses the architecture strings, ``config`` holds the reference-named settings,
``encoder``/``decoder``/``model`` build the network from block, resampler, latent and likelihood
plugins (the model draws its reconstruction grid at every validation), and ``convert`` (with the
``genkit convert vdvae`` command of ``commands``) imports the official checkpoints.
"""

from __future__ import annotations

from genkit.hookspecs import hookimpl
from genkit_plugins.vdvae.config import TINY, VDVAEConfig
from genkit_plugins.vdvae.model import VDVAE


@hookimpl
def genkit_register_models(register):
    register(
        "vdvae",
        VDVAE,
        config=VDVAEConfig,
        description="Very Deep VAE (Child 2021): hierarchical VAE described by block strings, DMOL output",
        example=VDVAEConfig(**TINY),
    )


@hookimpl
def genkit_register_commands(register):
    from genkit_plugins.vdvae.commands import convert_vdvae

    register(convert_vdvae, group="convert")


__all__ = ["VDVAE", "VDVAEConfig"]
