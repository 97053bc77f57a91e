"""Run the plugin contract suite (``genkit.testing``) over every built-in plugin."""

from genkit.testing.test_contracts import *  # noqa: F403
