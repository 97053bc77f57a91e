"""The ``[model]`` settings of Flow++, under the official code's hyperparameter names.

``filters``, ``blocks``, ``components``, ``heads``, ``dropout``, ``dequant_filters`` and
``dequant_blocks`` are the arguments of the official ``run_cifar.py`` (``construct`` and
``MixLogisticAttnCoupling``); ``image_size``, ``image_channels`` and ``bits`` are named as the
VDVAE's. With ``bits < 8`` the model sees the top ``bits`` bits of each pixel and its density lives on
``[0, 2^bits)``, as the official CelebA 5-bit launchers do (``ImgProc`` over ``[0, 32)``).
Defaults are the official CIFAR-10 model (31,443,440 parameters). ``coupling``, ``dequantizer``,
``norm``, ``pointwise`` and ``preprocess`` name plugins of the kinds this plugin adds, and ``stages``
names ``split`` (``NAME:N``) and ``squeeze`` (``NAME``) plugins, so any of them can be swapped for a
third party's; ``norm`` and ``pointwise`` are the layers of every step, the dequantizer's included.
"""

from __future__ import annotations

import attrs

from genkit.components import ComponentRef, component
from genkit.schema import check, in_range
from genkit_plugins.flowpp.dequantizers import VariationalSettings
from genkit_plugins.flowpp.flow import parse_stages, plan_stages
from genkit_plugins.flowpp.kinds import COUPLING, DEQUANTIZER, FLOW_LAYER, PREPROCESS, StageError

CIFAR10_STAGES = "checkerboard:4,squeeze,channel:2,checkerboard:3"


@attrs.frozen
class FlowPPConfig:
    """Settings of the ``flowpp`` model (official names; CIFAR-10 defaults)."""

    image_size: int = attrs.field(default=32, validator=in_range(1))
    image_channels: int = attrs.field(default=3, validator=in_range(1))
    bits: int = attrs.field(default=8, validator=in_range(1, 8))
    stages: str = CIFAR10_STAGES
    filters: int = attrs.field(default=96, validator=in_range(1))
    blocks: int = attrs.field(default=10, validator=in_range(0))
    components: int = attrs.field(default=32, validator=in_range(1))
    heads: int = attrs.field(default=4, validator=in_range(1))
    dropout: float = attrs.field(default=0.2, validator=in_range(0, 1, high_open=True))
    dequant_filters: int = attrs.field(default=96, validator=in_range(1))
    dequant_blocks: int = attrs.field(default=2, validator=in_range(0))
    coupling: ComponentRef = component(COUPLING, "mlc")
    dequantizer: ComponentRef = component(DEQUANTIZER, "variational")
    norm: ComponentRef = component(FLOW_LAYER, "norm")
    pointwise: ComponentRef = component(FLOW_LAYER, "pointwise")
    preprocess: ComponentRef = component(PREPROCESS, "logit")

    def __attrs_post_init__(self) -> None:
        try:
            plan_stages(parse_stages(self.stages), (self.image_channels, self.image_size, self.image_size))
        except StageError as exc:
            check(
                False,
                "stages",
                "comma-separated NAME:N (N steps on the halves of a split plugin) and NAME (a squeeze plugin) "
                f"for a {self.image_size}×{self.image_size}×{self.image_channels} image ({exc})",
                self.stages,
            )
        for name, filters in (("filters", self.filters), ("dequant_filters", self.dequant_filters)):
            check(filters % self.heads == 0, name, f"a multiple of heads = {self.heads}", filters)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.image_channels)


# The official code run at 8×8 on the fixtures (reference/fixtures/flowpp-tiny): 432,320 parameters.
TINY = dict(
    image_size=8, filters=16, blocks=1, components=4, heads=2, dropout=0.0, dequant_filters=16, dequant_blocks=1
)
# The smallest model the contract tests build.
EXAMPLE = dict(
    image_size=4,
    filters=8,
    blocks=1,
    components=2,
    heads=2,
    dropout=0.0,
    dequant_filters=8,
    dequant_blocks=1,
    dequantizer=ComponentRef("variational", VariationalSettings(couplings=2, context=4, context_blocks=1)),
)
