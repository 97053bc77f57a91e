"""genkit: a plugin-based PyTorch toolkit for likelihood-based generative models of images.

The names most scripts need, loaded on first use so that ``import genkit`` and the CLI stay fast:
``from_pretrained`` (a model directory, a run directory or a Hub repo), ``save_pretrained``,
``push_to_hub``, ``load_recipe`` and ``build_model``; ``save_latents`` and ``load_latents`` (a model's
latents in a file, :mod:`genkit.latentfiles`).
"""

from genkit.version import __version__

_API = {
    "from_pretrained": "genkit.hub",
    "push_to_hub": "genkit.hub",
    "save_pretrained": "genkit.pretrained",
    "load_recipe": "genkit.recipe",
    "build_model": "genkit.models",
    "save_latents": "genkit.latentfiles",
    "load_latents": "genkit.latentfiles",
}


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'genkit' has no attribute {name!r}")


__all__ = ["__version__", *_API]
