"""Run the model contract suite (``genkit.testing``) over every built-in model."""

from genkit.testing.test_model_contracts import *  # noqa: F403
