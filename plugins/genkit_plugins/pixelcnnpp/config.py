"""The ``[model]`` settings of PixelCNN++, under the reference's hyperparameter names.

``nr_resnet``, ``nr_filters``, ``nr_logistic_mix`` and ``dropout`` are openai/pixel-cnn's
``train.py`` flags (and pclucas14/pixel-cnn-pp's), with their CIFAR-10 values as defaults;
``image_size`` and ``image_channels`` are named as the VDVAE's. ``num_classes`` > 0 makes the model
class-conditional as the official code's ``h``: a learned bias per class in every gated block.
"""

from __future__ import annotations

import attrs

from genkit.components import ComponentRef, component
from genkit.schema import check, in_range
from genkit_plugins.pixelcnnpp.kinds import NETWORK


@attrs.frozen
class PixelCNNPPConfig:
    """Settings of the ``pixelcnnpp`` model (reference names; CIFAR-10 defaults)."""

    image_size: int = attrs.field(default=32, validator=in_range(1))
    image_channels: int = attrs.field(default=3, validator=in_range(1))
    nr_resnet: int = attrs.field(default=5, validator=in_range(1))
    nr_filters: int = attrs.field(default=160, validator=in_range(1))
    nr_logistic_mix: int = attrs.field(default=10, validator=in_range(1))
    dropout: float = attrs.field(default=0.5, validator=in_range(0, 1, high_open=True))
    num_classes: int = attrs.field(default=0, validator=in_range(0))
    likelihood: ComponentRef = component("likelihood", "dmol")
    network: ComponentRef = component(NETWORK, "two-stream-unet")

    def __attrs_post_init__(self) -> None:
        check(self.image_size % 4 == 0, "image_size", "a multiple of 4 (the network halves it twice)", self.image_size)
        own = getattr(self.likelihood.settings, "num_mixtures", None)
        check(
            own is None or own == self.nr_logistic_mix,
            "likelihood.num_mixtures",
            f"nothing or the model's nr_logistic_mix = {self.nr_logistic_mix}",
            own,
        )


# The smallest model the contract tests build: 4×4 RGB (still three resolutions), one block per resolution.
TINY = dict(image_size=4, nr_resnet=1, nr_filters=8, nr_logistic_mix=3)
