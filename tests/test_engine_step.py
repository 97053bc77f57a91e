"""The optimisation step: AdamW with warm-up and clipping, skipped updates, EMA — against a NumPy float64
re-derivation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from engine_plugins import PixelModel, PixelSettings

from genkit.engine.distributed import Distributed
from genkit.engine.step import EMA, TrainStep, build_optimizer, lr_factor
from genkit.recipe import TrainConfig


def make(config: TrainConfig, seed: int = 0):
    torch.manual_seed(seed)
    model = PixelModel(PixelSettings(image_size=2, channels=1, init_scale=1.0))
    optimizer, scheduler = build_optimizer(model, config)
    ema = EMA(model, config.ema_rate)
    return model, optimizer, scheduler, ema, TrainStep(model, model, optimizer, ema, config, Distributed())


def images(seed: int = 0, n: int = 4):
    return torch.randint(0, 256, (n, 2, 2, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def numpy_gradient(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d/dlogits of mean over images of -Σ_d log softmax(logits_d)[x_d] / dims (float64)."""
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.zeros((len(x), *logits.shape))
    np.put_along_axis(onehot, x[..., None].astype(np.int64), 1.0, axis=-1)
    dims = int(np.prod(logits.shape[:-1]))
    return (p[None] - onehot).sum(0) / len(x) / dims


def test_two_steps_match_adamw_with_warmup_and_clipping_in_float64():
    config = TrainConfig(
        lr=0.1,
        betas=(0.9, 0.8),
        eps=1e-8,
        weight_decay=0.05,
        warmup_iters=2,
        grad_clip=0.02,
        skip_threshold=-1.0,
        ema_rate=0.5,
    )
    model, optimizer, scheduler, ema, step = make(config)
    theta = model.logits.detach().double().numpy().copy()
    ema_np = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, seed in [(1, 0), (2, 1)]:
        x = images(seed).numpy()[..., 0]
        g = numpy_gradient(theta, x[..., None])
        g = g * min(1.0, 0.02 / (np.sqrt((g**2).sum()) + 1e-6))
        lr = 0.1 * (t - 1) / 2  # warm-up: update t uses the factor of step t - 1 (the first, 0: as the reference)
        assert lr == 0.1 * lr_factor(t - 1, config)
        m = 0.9 * m + 0.1 * g
        v = 0.8 * v + 0.2 * g**2
        theta = theta * (1 - lr * 0.05) - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.8**t)) + 1e-8)
        ema_np = ema_np + 0.5 * (theta - ema_np)
        out = step(images(seed))
        scheduler.step()
        assert out["skipped"].item() == 0.0
    np.testing.assert_allclose(model.logits.detach().double().numpy(), theta, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ema.model.logits.detach().double().numpy(), ema_np, rtol=0, atol=1e-6)


def test_the_reported_gradient_norm_is_the_norm_before_clipping():
    config = TrainConfig(grad_clip=1e-6, skip_threshold=-1.0)
    model, _, _, _, step = make(config)
    g = numpy_gradient(model.logits.detach().double().numpy(), images().numpy())
    out = step(images())
    assert out["grad_norm"].item() == pytest.approx(math.sqrt((g**2).sum()), rel=1e-5)


def state_of(model, optimizer, ema):
    return (
        model.logits.detach().clone(),
        ema.model.logits.detach().clone(),
        {k: v.clone() for k, v in optimizer.state[model.logits].items()},
    )


def assert_same_state(a, b):
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[2].keys() == b[2].keys() and all(torch.equal(a[2][k], b[2][k]) for k in a[2])


def test_an_update_whose_gradient_norm_reaches_the_threshold_is_skipped_entirely():
    model, optimizer, scheduler, ema, step = make(TrainConfig(warmup_iters=0, skip_threshold=400.0, ema_rate=0.5))
    step(images(0))
    before = state_of(model, optimizer, ema)
    # scale the loss so that the gradient norm is far above the threshold
    original_forward = model.forward
    model.forward = lambda x, latents="sample": original_forward(x)._replace(nll=original_forward(x).nll * 1e9)
    out = step(images(1))
    assert out["skipped"].item() == 1.0 and out["grad_norm"].item() >= 400.0
    assert_same_state(before, state_of(model, optimizer, ema))


def test_a_non_finite_loss_skips_the_update():
    model, optimizer, _, ema, step = make(TrainConfig(warmup_iters=0, skip_threshold=-1.0))
    step(images(0))
    before = state_of(model, optimizer, ema)
    original_forward = model.forward
    model.forward = lambda x, latents="sample": original_forward(x)._replace(nll=original_forward(x).nll * float("nan"))
    out = step(images(1))
    assert out["skipped"].item() == 1.0
    assert_same_state(before, state_of(model, optimizer, ema))
    model.forward = original_forward
    assert step(images(2))["skipped"].item() == 0.0  # and training carries on


def test_ema_starts_at_the_weights_and_moves_by_one_minus_rate():
    model, _, _, ema, _ = make(TrainConfig(ema_rate=0.9))
    start = model.logits.detach().clone()
    assert torch.equal(ema.model.logits, start)
    with torch.no_grad():
        model.logits.add_(1.0)
    ema.update(torch.tensor(1.0))
    torch.testing.assert_close(ema.model.logits, start + 0.1, rtol=0, atol=1e-6)
    ema.update(torch.tensor(0.0))
    torch.testing.assert_close(ema.model.logits, start + 0.1, rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_step_runs_on_cuda_in_bfloat16():
    config = TrainConfig(dtype="bfloat16", warmup_iters=0)
    torch.manual_seed(0)
    model = PixelModel(PixelSettings(image_size=2)).cuda()
    optimizer, _ = build_optimizer(model, config)
    step = TrainStep(model, model, optimizer, EMA(model, 0.9), config, Distributed(device=torch.device("cuda")))
    out = step(images().cuda())
    assert out["loss"].is_cuda and torch.isfinite(out["loss"])


def test_bfloat16_autocast_trains_on_cpu_with_float32_weights():
    model, _, _, ema, step = make(TrainConfig(dtype="bfloat16", warmup_iters=0))
    before = model.logits.detach().clone()
    out = step(images())
    assert out["skipped"].item() == 0.0 and torch.isfinite(out["loss"])
    assert model.logits.dtype == torch.float32 and not torch.equal(model.logits, before)
