"""Flow++ (Ho et al. 2019, aravindsrinivas/flowpp) as genkit plugins.

Adds six kinds through the same hooks a third party would use — ``coupling`` (``mlc``,
``affine``), ``dequantizer`` (``variational``, ``uniform``), ``flow-layer`` (``norm``,
``pointwise``), ``split`` (``checkerboard``, ``channel``), ``squeeze`` (``squeeze``) and
``preprocess`` (``logit``) — the model ``flowpp`` built from them through the registry, and the
command ``genkit convert flowpp`` that imports the official TensorFlow variables.

``kinds`` declares the kinds' interfaces, ``contracts`` and ``layer_contracts`` their contract
tests; ``mixture`` holds the logistic mixture and its inverse CDF, ``layers`` the Norm,
Pointwise, logit preprocessing, splits and squeeze, ``network`` the conditioning network, ``flow``
the steps and stages, ``couplings`` and ``dequantizers`` those components, ``config`` and ``model``
the model, ``convert`` and ``commands`` the converter.
"""

from __future__ import annotations

from functools import partial

from genkit.hookspecs import hookimpl
from genkit_plugins.flowpp.config import EXAMPLE, FlowPPConfig
from genkit_plugins.flowpp.couplings import AffineCoupling, MixtureCDFCoupling
from genkit_plugins.flowpp.dequantizers import UniformDequantizer, VariationalDequantizer, VariationalSettings
from genkit_plugins.flowpp.kinds import (
    COUPLING,
    DEQUANTIZER,
    FLOW_LAYER,
    PREPROCESS,
    SPLIT,
    SQUEEZE,
    Coupling,
    Dequantizer,
    FlowLayer,
    Preprocess,
    Split,
    Squeeze,
)
from genkit_plugins.flowpp.layers import ChannelSplit, ColumnSplit, LogitPreprocess, Norm, Pointwise, SpaceToDepth
from genkit_plugins.flowpp.model import FlowPP

CONTRACTS = "genkit_plugins.flowpp.contracts"
LAYER_CONTRACTS = "genkit_plugins.flowpp.layer_contracts"


@hookimpl
def genkit_register_kinds(register):
    register(COUPLING, Coupling, "Invertible couplings of a normalising flow's split halves", contracts=CONTRACTS)
    register(
        DEQUANTIZER, Dequantizer, "Dequantization noise q(u | x) for a flow on integer images", contracts=CONTRACTS
    )
    register(FLOW_LAYER, FlowLayer, "Invertible layers of a flow step on both halves", contracts=LAYER_CONTRACTS)
    register(SPLIT, Split, "How a flow stage halves its input (NAME:N in a stage string)", contracts=LAYER_CONTRACTS)
    register(
        SQUEEZE, Squeeze, "Rearrangements of a flow between stages (NAME in a stage string)", contracts=LAYER_CONTRACTS
    )
    register(PREPROCESS, Preprocess, "Maps from dequantized pixels to a flow's input", contracts=LAYER_CONTRACTS)


@hookimpl
def genkit_register_components(register):
    register(
        COUPLING,
        "mlc",
        MixtureCDFCoupling,
        description="Flow++'s logistic-mixture-CDF coupling with gated convolutions and self-attention",
    )
    register(COUPLING, "affine", AffineCoupling, description="Affine coupling with Flow++'s network (its ablation)")
    register(
        DEQUANTIZER,
        "variational",
        VariationalDequantizer,
        config=VariationalSettings,
        description="Flow++'s variational dequantizer: a flow on the noise, conditioned on the image",
        example=VariationalSettings(couplings=2, context=4, context_blocks=1),
    )
    register(DEQUANTIZER, "uniform", UniformDequantizer, description="Uniform dequantization, u ~ U(0, 1)")
    register(
        FLOW_LAYER,
        "norm",
        Norm.from_settings,
        description="Flow++'s per-activation affine Norm, zero mean and unit variance at data-dependent init",
    )
    register(
        FLOW_LAYER,
        "pointwise",
        Pointwise.from_settings,
        description="Invertible 1×1 convolution per half, log-determinant and inverse in float64 (Flow++'s Pointwise)",
    )
    register(SPLIT, "checkerboard", ColumnSplit, description="Even and odd columns (Flow++'s CheckerboardSplit)")
    register(
        SPLIT, "channel", ChannelSplit, description="First and second half of the channels (Flow++'s ChannelSplit)"
    )
    register(
        SQUEEZE,
        "squeeze",
        SpaceToDepth,
        description="space_to_depth(2) in TensorFlow's channel order (C, H, W → 4C, H/2, W/2)",
    )
    register(PREPROCESS, "logit", LogitPreprocess, description="logit(0.05 + 0.9·v/levels), Flow++'s ImgProc")


@hookimpl
def genkit_register_models(register):
    register(
        "flowpp",
        FlowPP,
        config=FlowPPConfig,
        description="Flow++ (Ho et al. 2019): variational dequantization, mixture-CDF couplings, self-attention",
        example=partial(FlowPPConfig, **EXAMPLE),  # its stage string is checked against the registry
    )


@hookimpl
def genkit_register_commands(register):
    from genkit_plugins.flowpp.commands import convert_flowpp

    register(convert_flowpp, group="convert")


__all__ = [
    "AffineCoupling",
    "Coupling",
    "Dequantizer",
    "FlowLayer",
    "FlowPP",
    "FlowPPConfig",
    "MixtureCDFCoupling",
    "Preprocess",
    "Split",
    "Squeeze",
]
