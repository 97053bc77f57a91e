"""The Very Deep VAE's compact architecture strings (Child 2021, openai/vdvae).

``enc_blocks`` and ``dec_blocks`` are comma-separated tokens:

* ``RxN`` — N blocks at resolution R;
* ``RdK`` (encoder) — one block at R, then average pooling by K;
* ``RmS`` (decoder) — one block at R that first adds the nearest-neighbour unpooled state of
  resolution S (its channels sliced to R's width);
* ``R`` — one block at R.

``custom_width_str`` (``"R:W,…"``) overrides the width at chosen resolutions.
"""

from __future__ import annotations

from typing import NamedTuple


class Stage(NamedTuple):
    """One block: its resolution and, for the encoder, the pooling factor after it (``RdK``) or,
    for the decoder, the coarser resolution it mixes in (``RmS``); ``None`` otherwise."""

    resolution: int
    factor: int | None = None


class BlockStringError(ValueError):
    """A malformed architecture string; ``str()`` says which token and why."""


def parse_blocks(text: str, *, factor_letter: str) -> list[Stage]:
    """``"32x2,32d2,16"`` -> stages. ``factor_letter`` is ``d`` (encoder) or ``m`` (decoder)."""
    other = "m" if factor_letter == "d" else "d"
    stages: list[Stage] = []
    for token in text.split(","):
        token = token.strip()
        try:
            if "x" in token:
                res, count = (int(part) for part in token.split("x"))
                if count < 1:
                    raise BlockStringError(f"token {token!r}: a block count must be at least 1")
                stages += [Stage(res)] * count
            elif factor_letter in token:
                res, factor = (int(part) for part in token.split(factor_letter))
                stages.append(Stage(res, factor))
            elif other in token:
                raise BlockStringError(
                    f"token {token!r}: '{other}' belongs in the {'decoder' if other == 'm' else 'encoder'} string"
                )
            else:
                stages.append(Stage(int(token)))
        except ValueError as exc:
            if isinstance(exc, BlockStringError):
                raise
            raise BlockStringError(f"token {token!r} is not RxN, R{factor_letter}K or R (integers)") from None
        if stages and stages[-1].resolution < 1:
            raise BlockStringError(f"token {token!r}: resolutions must be positive")
    return stages


def parse_widths(width: int, text: str) -> dict[int, int]:
    """``"8:24,4:32"`` -> {8: 24, 4: 32}; every other resolution has ``width`` (see :func:`width_at`)."""
    widths: dict[int, int] = {}
    for token in filter(None, (t.strip() for t in text.split(","))):
        try:
            res, value = (int(part) for part in token.split(":"))
        except ValueError:
            raise BlockStringError(f"token {token!r} is not RESOLUTION:WIDTH (integers)") from None
        if value < 1:
            raise BlockStringError(f"token {token!r}: widths must be positive")
        widths[res] = value
    return widths


def width_at(width: int, custom: dict[int, int], resolution: int) -> int:
    return custom.get(resolution, width)


def check_encoder(stages: list[Stage], image_size: int) -> list[int]:
    """The resolution after each encoder block; fails if a block's resolution is not the one it receives."""
    current, after = image_size, []
    for i, stage in enumerate(stages):
        if stage.resolution != current:
            raise BlockStringError(f"block {i} is at resolution {stage.resolution} but receives {current}×{current}")
        if stage.factor is not None:
            if stage.factor < 2 or current % stage.factor:
                raise BlockStringError(
                    f"block {i} ({current}d{stage.factor}): the pooling factor must be ≥ 2 and divide {current}"
                )
            current //= stage.factor
        after.append(current)
    return after


def check_decoder(stages: list[Stage], image_size: int, encoder_resolutions: set[int]) -> None:
    """Every decoder block needs an encoder activation at its resolution; a mix-in needs an earlier state."""
    seen: set[int] = set()
    for i, stage in enumerate(stages):
        if stage.resolution not in encoder_resolutions:
            raise BlockStringError(
                f"block {i} is at resolution {stage.resolution}, where the encoder keeps no activation"
            )
        if stage.factor is not None:
            if stage.factor not in seen:
                raise BlockStringError(
                    f"block {i} ({stage.resolution}m{stage.factor}) mixes in resolution {stage.factor}, "
                    "which no earlier block computes"
                )
            if stage.resolution % stage.factor or stage.resolution <= stage.factor:
                raise BlockStringError(
                    f"block {i} ({stage.resolution}m{stage.factor}): "
                    f"{stage.factor} must be a smaller divisor of {stage.resolution}"
                )
        seen.add(stage.resolution)
    if image_size not in seen:
        raise BlockStringError(f"no block is at the image resolution {image_size}, so nothing produces the output")
