"""Flow++ (Ho et al. 2019, aravindsrinivas/flowpp) as genkit plugins.

Adds two kinds, ``coupling`` (``mlc``, ``affine``) and ``dequantizer`` (``variational``,
``uniform``), through the same hooks a third party would use, the model ``flowpp`` built from them,
and the command ``genkit convert flowpp`` that imports the official TensorFlow variables.

``mixture`` holds the logistic mixture and its bisection inverse, ``layers`` the Norm, Pointwise,
logit preprocessing and splits, ``network`` the conditioning network, ``flow`` the steps and
stages, ``couplings`` and ``dequantizers`` the components, ``model`` the model, ``convert`` and
``commands`` the converter.
"""

from __future__ import annotations

from genkit.hookspecs import hookimpl
from genkit_plugins.flowpp.config import EXAMPLE, FlowPPConfig
from genkit_plugins.flowpp.couplings import AffineCoupling, MixtureCDFCoupling
from genkit_plugins.flowpp.dequantizers import UniformDequantizer, VariationalDequantizer, VariationalSettings
from genkit_plugins.flowpp.kinds import Coupling, Dequantizer
from genkit_plugins.flowpp.model import FlowPP

CONTRACTS = "genkit_plugins.flowpp.contracts"


@hookimpl
def genkit_register_kinds(register):
    register("coupling", Coupling, "Invertible couplings of a normalising flow's split halves", contracts=CONTRACTS)
    register(
        "dequantizer", Dequantizer, "Dequantization noise q(u | x) for a flow on integer images", contracts=CONTRACTS
    )


@hookimpl
def genkit_register_components(register):
    register(
        "coupling",
        "mlc",
        MixtureCDFCoupling,
        description="Flow++'s logistic-mixture-CDF coupling with gated convolutions and self-attention",
    )
    register("coupling", "affine", AffineCoupling, description="Affine coupling with Flow++'s network (its ablation)")
    register(
        "dequantizer",
        "variational",
        VariationalDequantizer,
        config=VariationalSettings,
        description="Flow++'s variational dequantizer: a flow on the noise, conditioned on the image",
        example=VariationalSettings(couplings=2, context=4, context_blocks=1),
    )
    register("dequantizer", "uniform", UniformDequantizer, description="Uniform dequantization, u ~ U(0, 1)")


@hookimpl
def genkit_register_models(register):
    register(
        "flowpp",
        FlowPP,
        config=FlowPPConfig,
        description="Flow++ (Ho et al. 2019): variational dequantization, mixture-CDF couplings, self-attention",
        example=FlowPPConfig(**EXAMPLE),
    )


@hookimpl
def genkit_register_commands(register):
    from genkit_plugins.flowpp.commands import convert_flowpp

    register(convert_flowpp, group="convert")


__all__ = ["AffineCoupling", "Coupling", "Dequantizer", "FlowPP", "FlowPPConfig", "MixtureCDFCoupling"]
