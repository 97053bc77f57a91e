"""The learning-rate schedule in closed form, and the guards (clipping, size-based skipping) switched off."""

from __future__ import annotations

import math

import pytest
import torch
from test_engine_step import images, make

from genkit.engine.step import build_optimizer, lr_factor
from genkit.recipe import TrainConfig


def rates(config: TrainConfig, steps: list[int]) -> list[float]:
    """The learning rate the optimizer holds before each update in ``steps``, after stepping the scheduler there."""
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = build_optimizer(model, config)
    out, done = [], 0
    for step in steps:
        for _ in range(step - done):
            optimizer.step()  # no gradients: a no-op that keeps the scheduler's order check quiet
            scheduler.step()
        done = step
        out.append(float(optimizer.param_groups[0]["lr"]))
    return out


def test_the_vdvae_warm_up_is_linear_from_zero_then_flat():
    config = TrainConfig(lr=2e-4, warmup_iters=100)
    assert rates(config, [0, 1, 50, 99, 100, 5000]) == pytest.approx([0, 2e-6, 1e-4, 1.98e-4, 2e-4, 2e-4], rel=1e-12)


def test_the_pixelcnnpp_schedule_decays_every_step_with_no_warm_up():
    config = TrainConfig(lr=1e-3, warmup_iters=0, lr_decay=0.999995)
    steps = [0, 1, 1000, 312_000]
    assert rates(config, steps[:3]) == pytest.approx([1e-3 * 0.999995**s for s in steps[:3]], rel=1e-12)
    assert 1e-3 * lr_factor(312_000, config) == pytest.approx(1e-3 * math.exp(312_000 * math.log(0.999995)), rel=1e-12)
    assert lr_factor(312_000, config) == pytest.approx(0.21, abs=0.005)  # after ~800 epochs of CIFAR-10


def test_the_flowpp_imagenet_schedule_warms_up_holds_then_decays_to_its_floor():
    config = TrainConfig(lr=1e-3, warmup_iters=5000, lr_decay_after=50_000, lr_decay=0.99995, lr_floor=3e-4)
    closed = {
        0: 0.0,
        2500: 5e-4,
        5000: 1e-3,
        49_999: 1e-3,
        50_000: 1e-3,
        60_000: 1e-3 * 0.99995**10_000,
        80_000: 3e-4,  # 1e-3 · 0.99995^30000 = 2.2e-4 would be below the floor
    }
    for step, expected in closed.items():
        assert config.lr * lr_factor(step, config) == pytest.approx(expected, rel=1e-12, abs=1e-18), step


def test_a_floor_above_the_learning_rate_is_refused_at_validation():
    from genkit.errors import RecipeError
    from genkit.recipe import recipe_from_dict

    with pytest.raises(RecipeError, match="train.lr_floor: expected a floor no higher than lr"):
        recipe_from_dict({"model": {"name": "vdvae"}, "train": {"lr": 1e-4, "lr_floor": 1e-3}})


def test_with_clipping_off_the_update_uses_the_whole_gradient():
    clipped = make(TrainConfig(warmup_iters=0, grad_clip=1e-6, skip_threshold=0))
    whole = make(TrainConfig(warmup_iters=0, grad_clip=0, skip_threshold=0))
    for _, _, _, _, step in (clipped, whole):
        out = step(images(0))
        assert out["skipped"].item() == 0.0 and out["grad_norm"].item() > 1e-3
    # Adam normalises the step size, so compare the first moments' norms: the clipped gradient is 1e-6 long
    moments = [opt.state[next(iter(opt.state))]["exp_avg"].norm().item() for _, opt, _, _, _ in (clipped, whole)]
    assert moments[0] == pytest.approx(0.1 * 1e-6, rel=1e-3) and moments[1] > 1e3 * moments[0]


def test_with_size_based_skipping_off_a_huge_but_finite_gradient_is_applied():
    model, optimizer, _, ema, step = make(TrainConfig(warmup_iters=0, grad_clip=0, skip_threshold=0))
    original_forward = model.forward
    model.forward = lambda x, latents="sample": original_forward(x)._replace(nll=original_forward(x).nll * 1e9)
    before = model.logits.detach().clone()
    out = step(images(1))
    assert out["skipped"].item() == 0.0 and out["grad_norm"].item() > 1e6
    assert not torch.equal(before, model.logits)
