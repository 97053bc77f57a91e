"""The ``[model]`` settings of the Very Deep VAE, under the reference's hyperparameter names.

The names and meanings are openai/vdvae's (``hps.py``), so a reference configuration moves over
unchanged; defaults are its CIFAR-10 preset. The preprocessing settings reproduce its
``data.py``: the encoder sees ``(x + input_shift) · input_scale`` (``x`` divided by 255 first when
``input_unit_range``, as FFHQ-1024); the likelihood's target is ``(x − 127.5) / 127.5`` with, for
``bits < 8``, ``x`` first floored to a multiple of ``2^(8 − bits)`` (FFHQ-256 at 5 bits: the largest
target is then 0.945, so the upper edge bin never applies — as in the published result).
"""

from __future__ import annotations

import attrs

from genkit.components import ComponentRef, component
from genkit.schema import check, in_range
from genkit_plugins.vdvae.blockstr import (
    BlockStringError,
    check_decoder,
    check_encoder,
    parse_blocks,
    parse_widths,
    width_at,
)


@attrs.frozen
class VDVAEConfig:
    """Settings of the ``vdvae`` model (reference names; CIFAR-10 defaults)."""

    image_size: int = attrs.field(default=32, validator=in_range(1))
    image_channels: int = attrs.field(default=3, validator=in_range(1))
    width: int = attrs.field(default=384, validator=in_range(1))
    zdim: int = attrs.field(default=16, validator=in_range(1))
    enc_blocks: str = "32x11,32d2,16x6,16d2,8x6,8d2,4x3,4d4,1x3"
    dec_blocks: str = "1x1,4m1,4x2,8m4,8x5,16m8,16x10,32m16,32x21"
    bottleneck_multiple: float = attrs.field(default=0.25, validator=in_range(0, low_open=True))
    custom_width_str: str = ""
    no_bias_above: int = attrs.field(default=64, validator=in_range(0))
    num_mixtures: int = attrs.field(default=10, validator=in_range(1))
    bits: int = attrs.field(default=8, validator=in_range(1, 8))
    input_shift: float = -120.63838
    input_scale: float = 1.0 / 64.16736
    input_unit_range: bool = False
    likelihood: ComponentRef = component("likelihood", "dmol")
    prior: ComponentRef = component("latent", "gaussian")
    posterior: ComponentRef = component("latent", "gaussian")
    block: ComponentRef = component("block", "bottleneck")
    upsampler: ComponentRef = component("resampler", "nearest")
    downsampler: ComponentRef = component("resampler", "avgpool")

    def __attrs_post_init__(self) -> None:
        try:
            enc = parse_blocks(self.enc_blocks, factor_letter="d")
        except BlockStringError as exc:
            check(False, "enc_blocks", f"an encoder block string like '32x11,32d2,16x6' ({exc})", self.enc_blocks)
        try:
            dec = parse_blocks(self.dec_blocks, factor_letter="m")
        except BlockStringError as exc:
            check(False, "dec_blocks", f"a decoder block string like '1x1,4m1,4x2' ({exc})", self.dec_blocks)
        try:
            custom = parse_widths(self.width, self.custom_width_str)
        except BlockStringError as exc:
            check(False, "custom_width_str", f"RESOLUTION:WIDTH pairs like '8:24,4:32' ({exc})", self.custom_width_str)
        try:
            after = check_encoder(enc, self.image_size)
        except BlockStringError as exc:
            check(
                False,
                "enc_blocks",
                f"blocks that start at image_size {self.image_size} and pool consistently ({exc})",
                self.enc_blocks,
            )
        try:
            check_decoder(dec, self.image_size, {self.image_size, *after})
        except BlockStringError as exc:
            check(
                False,
                "dec_blocks",
                f"blocks at the encoder's resolutions ending at image_size ({exc})",
                self.dec_blocks,
            )
        w = lambda r: width_at(self.width, custom, r)  # noqa: E731
        check(
            w(self.image_size) == self.width,
            "custom_width_str",
            f"the image resolution's width to equal width = {self.width}",
            self.custom_width_str,
        )
        for stage, res in zip(enc, after):
            # a pooled activation is zero-padded up to the coarser width, never cut
            check(
                w(res) >= w(stage.resolution),
                "custom_width_str",
                f"widths that do not shrink as the encoder pools ({stage.resolution} → {res})",
                self.custom_width_str,
            )
        for stage in dec:
            if stage.factor is not None:
                check(
                    w(stage.factor) >= w(stage.resolution),
                    "custom_width_str",
                    f"the mixed-in resolution {stage.factor} at least as wide as {stage.resolution}",
                    self.custom_width_str,
                )
        for res in {s.resolution for s in enc + dec}:
            check(
                int(w(res) * self.bottleneck_multiple) >= 1,
                "bottleneck_multiple",
                f"a middle width of at least 1 channel at resolution {res}",
                self.bottleneck_multiple,
            )
        own = getattr(self.likelihood.settings, "num_mixtures", None)
        check(
            own is None or own == self.num_mixtures,
            "likelihood.num_mixtures",
            f"nothing or the model's num_mixtures = {self.num_mixtures}",
            own,
        )

    def widths(self) -> dict[int, int]:
        """The custom widths by resolution (others are ``width``)."""
        return parse_widths(self.width, self.custom_width_str)

    def width_at(self, resolution: int) -> int:
        return width_at(self.width, self.widths(), resolution)

    def middle_width(self, resolution: int) -> int:
        return int(self.width_at(resolution) * self.bottleneck_multiple)

    def encoder_stages(self):
        return parse_blocks(self.enc_blocks, factor_letter="d")

    def decoder_stages(self):
        return parse_blocks(self.dec_blocks, factor_letter="m")


# The smallest model the contract tests and quick checks build: 8×8 RGB, three latent layers.
TINY = dict(
    image_size=8,
    width=8,
    zdim=2,
    enc_blocks="8x1,8d2,4d4,1x1",
    dec_blocks="1x1,4m1,8m4",
    num_mixtures=2,
)
