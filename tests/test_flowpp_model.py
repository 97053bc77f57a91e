"""The ``flowpp`` model: sizes, the bound and its constants, invertibility, initialisation, sampling, bf16."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import ndtri
from torch import nn

from genkit.capabilities import DataDependentInit, ImportanceWeighted, Invertible
from genkit.components import ComponentRef
from genkit.errors import ConfigError
from genkit_plugins.flowpp.config import EXAMPLE, FlowPPConfig
from genkit_plugins.flowpp.couplings import MixtureCDFCoupling
from genkit_plugins.flowpp.layers import Norm, Pointwise
from genkit_plugins.flowpp.mixture import LogisticMixture
from genkit_plugins.flowpp.model import FlowPP

DTYPE = torch.float64


def parameters(**settings) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in FlowPP(FlowPPConfig(**settings)).parameters())


def test_official_cifar10_model_has_31_443_440_parameters():
    assert parameters() == 31_443_440


def test_uniform_dequantization_ablation_has_32_324_408_parameters():
    """``abl_nodequant.py``: no dequantizer, filters 104 to compensate."""
    assert parameters(filters=104, dequantizer=ComponentRef("uniform")) == 32_324_408


def test_affine_coupling_ablation_has_32_045_708_parameters():
    """``abl_nomixlog.py``: affine couplings, filters 108 everywhere."""
    assert parameters(filters=108, dequant_filters=108, coupling=ComponentRef("affine")) == 32_045_708


def images(n: int, shape=(4, 4, 3), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def tiny(seed: int = 0, perturb: float = 0.05, **settings) -> FlowPP:
    """The contract-test model in float64, initialised on 16 images, then every weight perturbed."""
    torch.manual_seed(seed)
    model = FlowPP(FlowPPConfig(**{**EXAMPLE, **settings})).to(DTYPE)
    model.initialize(images(16, model.image_shape, seed=100))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    return model.eval()


def test_model_declares_its_capabilities_objective_and_sampler():
    model = tiny()
    assert isinstance(model, DataDependentInit) and isinstance(model, ImportanceWeighted)
    assert isinstance(model, Invertible)
    assert model.objective.label == "variational dequantization bound"
    assert model.objective.parts == ("flow", "dequant") and not model.objective.exact
    assert model.samplers == ("inverse",)
    uniform = FlowPP(FlowPPConfig(**{**EXAMPLE, "dequantizer": ComponentRef("uniform")}))
    assert uniform.objective.label == "uniform dequantization bound"


def test_parts_sum_to_the_bound_and_match_the_terms():
    model = tiny()
    x = images(3)
    with torch.no_grad():
        terms = model(x, generator=torch.Generator().manual_seed(1))
        bound = model.bound_terms(
            model.to_float(x), model.dequantizer.noise(model.to_float(x), "sample", torch.Generator().manual_seed(1))
        )
    assert torch.allclose(terms.nll, terms.parts["flow"] + terms.parts["dequant"], rtol=1e-14)
    assert torch.allclose(terms.nll, -bound.log_weight / 48, rtol=1e-12)
    assert torch.allclose(terms.parts["dequant"], bound.log_q / 48, rtol=1e-12)


def test_main_flow_logdet_is_the_log_determinant_of_its_jacobian():
    """log|det ∂z/∂v| of the whole main flow (logit preprocessing, four stages) against autograd, per image."""
    model = tiny()
    v = model.to_float(images(2)) + torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    _, logdet = model.flow(v)
    for b in range(2):
        jacobian = torch.autograd.functional.jacobian(
            lambda t: model.flow(t.reshape(1, 3, 4, 4))[0].flatten(), v[b].flatten(), vectorize=True
        )
        sign, logabsdet = torch.linalg.slogdet(jacobian)
        assert sign == 1 and logabsdet.item() == pytest.approx(logdet[b].item(), abs=1e-9)


def test_round_trip_through_the_latents_is_exact_in_float64():
    model = tiny()
    x = model.to_float(images(4))
    with torch.no_grad():
        v = x + model.dequantizer(x, model.dequantizer.noise(x, "sample", torch.Generator().manual_seed(3)))[0]
        z, logdet = model.flow(v)
        back, inverse_logdet = model.flow.inverse(z)
    assert z.shape == (4, *model.latent_shape) == (4, 12, 2, 2)
    assert (back - v).abs().max() < 1e-10
    assert (inverse_logdet + logdet).abs().max() < 1e-9
    assert model.inverse_error(images(4), generator=torch.Generator().manual_seed(4)) < 1e-10


def test_initialize_normalises_the_first_norm_over_the_init_batch_and_touches_nothing_after():
    torch.manual_seed(0)
    model = FlowPP(FlowPPConfig(**EXAMPLE)).to(DTYPE).train()
    seen = []
    first = next(m for m in model.flow.modules() if isinstance(m, Norm))
    first.register_forward_hook(lambda module, args, out: seen.append(out[0]))
    torch.manual_seed(1)
    model.initialize(images(32, seed=5))
    for half in seen[0]:
        assert half.mean(0).abs().max() < 1e-10
        assert (half.var(0, correction=0) - 1).abs().max() < 1e-4
    weights = [p.clone() for p in model.parameters()]
    model(images(8, seed=6))
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))


class UniformFlow(nn.Module):
    """A flow whose density is exactly uniform on [0, L)^D: z = Φ⁻¹(v/L), so p(v) = 1/L per dimension."""

    def __init__(self, levels: int = 256):
        super().__init__()
        self.levels = levels

    def forward(self, v):
        z = torch.from_numpy(ndtri((v / self.levels).numpy()))
        log_normal = -0.5 * z.square() - 0.5 * math.log(2 * math.pi)
        return z, (-math.log(self.levels) - log_normal).flatten(1).sum(1)


def with_uniform_density(model: FlowPP) -> FlowPP:
    model.flow = UniformFlow(2**model.bits)
    return model


@pytest.mark.parametrize("bits", [8, 5])
def test_a_density_uniform_on_the_levels_gives_exactly_bits_per_dim(bits):
    """Uniform on [0, 256)^D (on [0, 32)^D for 5-bit images) with uniform dequantization: exactly 8 (5) bits/dim."""
    model = with_uniform_density(tiny(dequantizer=ComponentRef("uniform"), bits=bits))
    for latents in ("sample", "mean"):
        with torch.no_grad():
            nll = model(images(5), latents=latents, generator=torch.Generator().manual_seed(7)).nll
        assert torch.allclose(nll / math.log(2), torch.full_like(nll, float(bits)), rtol=0, atol=1e-12)
    log_weights = model.importance_log_weights(images(5), generator=torch.Generator().manual_seed(8))
    assert torch.allclose(log_weights, torch.full_like(log_weights, -48 * bits * math.log(2)), rtol=1e-14)


def test_five_bit_models_see_the_top_five_bits_and_sample_multiples_of_eight():
    model = tiny(bits=5)
    pixels = torch.tensor([0, 7, 8, 255], dtype=torch.uint8).repeat(12).reshape(1, 4, 4, 3)
    assert model.to_float(pixels).unique().tolist() == [0.0, 1.0, 31.0]
    samples = model.sample(4, generator=torch.Generator().manual_seed(13))
    assert (samples % 8 == 0).all()


def log_mean_exp(w: torch.Tensor, k: int) -> torch.Tensor:
    """The K-sample importance-weighted bound of each group of ``k`` consecutive draws."""
    return torch.logsumexp(w.reshape(-1, k), dim=1) - math.log(k)


def test_importance_weighted_bound_rises_with_k_towards_log_p_x():
    """Uniform density, variational q: log P(x) = −D·log 256 exactly; the K-sample bound rises towards it with K.

    4,096 draws for one 2×2 grey image, regrouped for every K (Burda et al. 2016: the bound's expectation is
    non-decreasing in K and reaches log P(x) as K → ∞).
    """
    model = with_uniform_density(tiny(image_size=2, image_channels=1, stages="squeeze"))
    image = images(1, model.image_shape, seed=9).expand(4096, -1, -1, -1)
    with torch.no_grad():
        w = model.importance_log_weights(image, generator=torch.Generator().manual_seed(10))
    log_p = -model.dims_per_image * math.log(256)
    gaps = [log_p - log_mean_exp(w, k).mean().item() for k in (1, 4, 16, 64, 256)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] > 0 and gaps[-1] < 0.5 * gaps[0]


def test_sampling_inverts_gaussian_latents_into_uint8_images():
    model = tiny()
    first = model.sample(3, temperature=0.7, generator=torch.Generator().manual_seed(11))
    again = model.sample(3, temperature=0.7, generator=torch.Generator().manual_seed(11))
    assert first.dtype == torch.uint8 and first.shape == (3, 4, 4, 3) and torch.equal(first, again)
    z = 0.7 * torch.randn((3, *model.latent_shape), generator=torch.Generator().manual_seed(11), dtype=DTYPE)
    assert torch.equal(first, model.decode(z))
    with pytest.raises(ConfigError, match="sampler 'ancestral'"):
        model.sample(1, sampler="ancestral")
    with pytest.raises(ConfigError, match="one finite number"):
        model.sample(1, temperature=[1.0, 1.0])


def test_mean_latents_are_deterministic_and_bad_modes_fail_in_one_line():
    model = tiny()
    with torch.no_grad():
        assert torch.equal(model(images(2), latents="mean").nll, model(images(2), latents="mean").nll)
    with pytest.raises(ConfigError, match="latents must be 'sample' or 'mean'"):
        model(images(2), latents="median")
    with pytest.raises(ConfigError, match=r"expected uint8 images of shape \(B, 4, 4, 3\)"):
        model(images(2, (8, 8, 3)))


def test_bad_stage_strings_and_head_counts_fail_naming_the_setting():
    with pytest.raises(ValueError, match="stages: expected"):
        FlowPPConfig(stages="checkerboard:4,squeeze,squeeze,squeeze,squeeze,squeeze,squeeze")
    with pytest.raises(ValueError, match="stages: expected"):
        FlowPPConfig(stages="checkers:2")
    with pytest.raises(ValueError, match="filters: expected a multiple of heads = 4"):
        FlowPPConfig(filters=30)


def test_under_bf16_autocast_the_flow_its_log_dets_and_the_inverse_search_stay_float32(monkeypatch):
    """The networks run in bf16; the state they transform, every log-determinant and the inverse search do not."""
    model = tiny().float()
    seen = []
    for module in model.modules():
        if isinstance(module, (Norm, Pointwise, MixtureCDFCoupling)):
            module.register_forward_hook(
                lambda m, args, out: seen.extend([out[0][0].dtype, out[0][1].dtype, out[1].dtype])
            )
    inverse = LogisticMixture.inverse_logit_cdf

    def recording_inverse(mixture, u, passes=None):
        seen.extend([u.dtype, mixture.means.dtype, mixture.logscales.dtype])
        return inverse(mixture, u, passes)

    monkeypatch.setattr(LogisticMixture, "inverse_logit_cdf", recording_inverse)
    with torch.no_grad():
        float32_loss = model(images(16), latents="mean").loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_terms = model(images(16), latents="mean")
            model.sample(2, generator=torch.Generator().manual_seed(12))
    assert len(seen) > 30 and set(seen) == {torch.float32}
    assert bf16_terms.nll.dtype == torch.float32
    assert abs(bf16_terms.loss.item() - float32_loss.item()) < 0.005 * abs(float32_loss.item())
