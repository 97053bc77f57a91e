"""PixelCNN++ (Salimans et al. 2017) as genkit plugins: the model ``pixelcnnpp`` and the parts it is built from.

``kinds`` declares three kinds of part (causal layers, gated blocks, causal networks) with their
contracts (``contracts``); ``weightnorm`` and ``layers`` are the weight-normalised shifted
convolutions, ``blocks`` the gated residual block, ``network`` the two-stream U-Net and ``cache``
its pixel-by-pixel evaluation, ``sampling`` the three samplers, ``config`` and ``model`` the model,
``convert`` and ``commands`` the importer of pclucas14/pixel-cnn-pp checkpoints.
"""

from __future__ import annotations

from genkit.hookspecs import hookimpl
from genkit_plugins.pixelcnnpp.blocks import GatedResNet
from genkit_plugins.pixelcnnpp.config import TINY, PixelCNNPPConfig
from genkit_plugins.pixelcnnpp.kinds import BLOCK, LAYER, NETWORK, CausalLayer, GatedBlock, PixelNetwork
from genkit_plugins.pixelcnnpp.layers import (
    DownRightShiftedConv2d,
    DownRightShiftedDeconv2d,
    DownShiftedConv2d,
    DownShiftedDeconv2d,
    NetworkInNetwork,
)
from genkit_plugins.pixelcnnpp.model import PixelCNNPP
from genkit_plugins.pixelcnnpp.network import TwoStreamConfig, TwoStreamUNet

CONTRACTS = "genkit_plugins.pixelcnnpp.contracts"


@hookimpl
def genkit_register_kinds(register):
    register(LAYER, CausalLayer, "Weight-normalised causal convolutions of PixelCNN's two streams", contracts=CONTRACTS)
    register(BLOCK, GatedBlock, "Residual blocks of one PixelCNN stream", contracts=CONTRACTS)
    register(
        NETWORK, PixelNetwork, "Networks causal to the pixel: images to a likelihood's parameters", contracts=CONTRACTS
    )


@hookimpl
def genkit_register_components(register):
    for layer in (DownShiftedConv2d, DownRightShiftedConv2d, DownShiftedDeconv2d, DownRightShiftedDeconv2d):
        register(LAYER, layer.name, layer)
    register(LAYER, "nin", NetworkInNetwork)
    register(BLOCK, "gated-resnet", GatedResNet)
    register(
        NETWORK,
        "two-stream-unet",
        TwoStreamUNet,
        config=TwoStreamConfig,
        description="PixelCNN++'s two-stream U-Net: three resolutions of gated blocks, skip connections",
    )


@hookimpl
def genkit_register_models(register):
    register(
        "pixelcnnpp",
        PixelCNNPP,
        config=PixelCNNPPConfig,
        description="PixelCNN++ (Salimans et al. 2017): causal two-stream network, DMOL output, exact likelihood",
        example=PixelCNNPPConfig(**TINY),
    )


@hookimpl
def genkit_register_commands(register):
    from genkit_plugins.pixelcnnpp.commands import convert_pixelcnnpp

    register(convert_pixelcnnpp, group="convert")


__all__ = ["PixelCNNPP", "PixelCNNPPConfig"]
