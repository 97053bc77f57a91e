"""genkit: a plugin-based PyTorch toolkit for likelihood-based generative models of images."""

__version__ = "0.1.0"


def __getattr__(name):
    # The heavy parts (torch models, the Hub client) load on first use, keeping `import genkit` and the CLI fast.
    if name == "from_pretrained":
        from genkit.pretrained import from_pretrained

        return from_pretrained
    if name == "load_recipe":
        from genkit.recipe import load_recipe

        return load_recipe
    raise AttributeError(f"module 'genkit' has no attribute {name!r}")
