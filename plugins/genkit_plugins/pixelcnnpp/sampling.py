"""Drawing images from a causal network pixel by pixel, three ways that give the same images.

One network evaluation gives the likelihood's parameters for every channel of every pixel given
the pixels before it; the likelihood draws a pixel's channels in order (R, then G given R, then B)
from its share of noise drawn for the whole image up front. So a sampler only decides how to get
the parameters at pixel ``(i, j)``:

* ``naive``: the whole network on the partly drawn image, H·W times;
* ``row-truncated``: the network on the rows up to the current one only (rounded up to the
  network's ``row_multiple``) — exact by causality, about half the work;
* ``cached``: the network's incremental evaluation (Ramachandran et al. 2017), every activation
  computed once: one forward pass of work per image.

Pixels the sampler has not drawn yet are zeros; no pixel's parameters depend on them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genkit.interfaces import Likelihood
from genkit_plugins.pixelcnnpp.kinds import PixelNetwork


def _draw(likelihood: Likelihood, params: Tensor, noise: Tensor, i: int, j: int) -> Tensor:
    pixel = likelihood.sample(params, noise=noise[:, :, i : i + 1, j : j + 1])
    # NaN where the parameters are not all finite, whatever the likelihood makes of them (a categorical draw from NaN
    # is level 0): the model checks the drawn image once, at the end, without a host synchronisation per pixel
    return torch.where(torch.isfinite(params).all(1, keepdim=True), pixel, torch.nan)


def naive(network: PixelNetwork, likelihood: Likelihood, x: Tensor, noise: Tensor, condition=None) -> Tensor:
    """Fill ``x`` (``(B, C, H, W)``) pixel by pixel, a full pass of the network per pixel."""
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            params = network(x, condition)[:, :, i : i + 1, j : j + 1]
            x[:, :, i : i + 1, j : j + 1] = _draw(likelihood, params, noise, i, j)
    return x


def row_truncated(network: PixelNetwork, likelihood: Likelihood, x: Tensor, noise: Tensor, condition=None) -> Tensor:
    """Fill ``x`` pixel by pixel, each pass on the rows up to the current one (rounded up to ``row_multiple``)."""
    h, w = x.shape[-2:]
    m = network.row_multiple
    for i in range(h):
        rows = min(h, m * math.ceil((i + 1) / m))
        for j in range(w):
            params = network(x[:, :, :rows], condition)[:, :, i : i + 1, j : j + 1]
            x[:, :, i : i + 1, j : j + 1] = _draw(likelihood, params, noise, i, j)
    return x


def cached(network: PixelNetwork, likelihood: Likelihood, x: Tensor, noise: Tensor, condition=None) -> Tensor:
    """Fill ``x`` pixel by pixel from the network's incremental evaluation: no host synchronisation in the loop."""
    h, w = x.shape[-2:]
    state = network.incremental(x, condition)
    for i in range(h):
        for j in range(w):
            pixel = _draw(likelihood, state.params_at(i, j), noise, i, j)
            state.write(i, j, pixel)
            x[:, :, i : i + 1, j : j + 1] = pixel
    return x


SAMPLERS = {"cached": cached, "row-truncated": row_truncated, "naive": naive}
