"""genkit's first-party plugins. Each module implements the hooks in ``genkit.hookspecs``
exactly as a third-party plugin would; the registry registers the modules listed here."""

BUILTIN_MODULES: list[str] = [
    "genkit_plugins.datasets.hooks",
    "genkit_plugins.categorical",
    "genkit_plugins.dmol",
    "genkit_plugins.gaussian",
    "genkit_plugins.bottleneck",
    "genkit_plugins.resample",
    "genkit_plugins.vdvae",
    "genkit_plugins.pixelcnnpp",
    "genkit_plugins.flowpp",
]
