"""genkit-iaf: an inverse-autoregressive-flow posterior for genkit's hierarchical VAEs (Kingma et al. 2016)."""

from genkit_iaf.posterior import IafDistribution, IafPosterior, IafSettings

__version__ = "0.1.0"
__all__ = ["IafDistribution", "IafPosterior", "IafSettings", "__version__"]
