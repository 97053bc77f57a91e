"""evaluate_dataset and the trivial baselines, against NumPy float64 computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from engine_plugins import PixelModel, PixelSettings

from genkit.engine.baselines import trivial_baselines
from genkit.engine.evaluate import evaluate_dataset


def dataset(n=10, seed=0, size=3):
    return list(
        torch.randint(0, 256, (n, size, size, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    )


def numpy_nll_bits_per_dim(logits: np.ndarray, images: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    log_softmax = logits - logits.max(-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax[None], images[..., None].astype(np.int64), -1)
    return float(-picked.mean() / math.log(2))


def model(latent=False):
    torch.manual_seed(0)
    return PixelModel(PixelSettings(image_size=3, latent=latent, init_scale=1.0))


def test_bits_per_dim_is_the_exact_negative_log_likelihood_over_the_first_max_images():
    m, data = model(), dataset()
    result = evaluate_dataset(m, data, batch_size=3, max_images=7, progress=False)
    expected = numpy_nll_bits_per_dim(m.logits.detach().numpy(), np.stack([d.numpy() for d in data[:7]]))
    assert result["images"] == 7
    assert result["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    assert result["nats_per_dim"] == pytest.approx(expected * math.log(2), rel=1e-6)
    assert result["rate_bits_per_dim"] == 0.0


def test_without_latents_the_importance_weighted_bound_equals_the_exact_likelihood():
    m, data = model(), dataset()
    result = evaluate_dataset(m, data, batch_size=4, importance_samples=3, progress=False)
    assert result["iw_bits_per_dim"] == pytest.approx(result["bits_per_dim"], rel=1e-6)


def test_the_rate_and_its_per_layer_split_are_the_analytic_kl():
    m, data = model(latent=True), dataset()
    result = evaluate_dataset(m, data, batch_size=4, progress=False)
    a, b, log_s = m.posterior.detach().double().numpy()
    means = a * (np.stack([d.numpy() for d in data]).astype(np.float64).mean((1, 2, 3)) / 127.5 - 1) + b
    kl = 0.5 * (means**2 + np.exp(2 * log_s) - 1) - log_s  # nats per image
    expected = kl.mean() / 9 / math.log(2)
    assert result["rate_bits_per_dim"] == pytest.approx(expected, rel=1e-5)
    assert result["layer_rate_bits_per_dim"] == pytest.approx([expected], rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(
        result["distortion_bits_per_dim"] + result["rate_bits_per_dim"], rel=1e-6
    )  # float32 per image


def test_more_importance_samples_tighten_the_bound_of_a_latent_model():
    m, data = model(latent=True), dataset(n=40)
    with torch.no_grad():
        m.posterior[2] = 0.5  # a wide posterior, so one sample is a loose bound
    torch.manual_seed(1)
    one = evaluate_dataset(m, data, batch_size=40, importance_samples=1, progress=False)["iw_bits_per_dim"]
    torch.manual_seed(1)
    many = evaluate_dataset(m, data, batch_size=40, importance_samples=64, progress=False)["iw_bits_per_dim"]
    assert many < one


def test_baselines_are_uniform_bits_and_the_smoothed_per_pixel_histogram():
    train, validation, test = dataset(50, 1, 2), dataset(20, 2, 2), dataset(20, 3, 2)
    result = trivial_baselines(train, validation, test, 8)
    assert result["uniform"] == 8.0
    alpha = result["pixel_histogram_alpha"]
    tr = np.stack([d.numpy() for d in train]).reshape(50, -1)
    te = np.stack([d.numpy() for d in test]).reshape(20, -1)
    bits = 0.0
    for dim in range(4):
        counts = np.bincount(tr[:, dim], minlength=256).astype(np.float64)
        probs = (counts + alpha) / (counts.sum() + 256 * alpha)
        bits -= np.log2(probs[te[:, dim]]).sum()
    assert result["pixel_histogram"] == pytest.approx(bits / te.size, rel=1e-12)


def test_a_five_bit_data_set_is_scored_on_its_32_levels():
    data = [torch.full((1, 1, 1), 8 * k + 3, dtype=torch.uint8) for k in range(32)]
    result = trivial_baselines(data, data, data, 5)
    assert result["uniform"] == 5.0
    assert result["pixel_histogram"] < 5.0 + 1e-9


def numpy_histogram_bits(fit_rows: np.ndarray, scored_rows: np.ndarray, alpha: float, levels: int = 256) -> float:
    """Bits/dim of ``scored_rows`` under per-dimension add-α histograms counted on ``fit_rows`` (float64)."""
    bits = 0.0
    for dim in range(fit_rows.shape[1]):
        counts = np.bincount(fit_rows[:, dim], minlength=levels).astype(np.float64)
        probs = (counts + alpha) / (counts.sum() + levels * alpha)
        bits -= np.log2(probs[scored_rows[:, dim]]).sum()
    return bits / scored_rows.size


def test_when_validation_is_the_test_set_alpha_is_chosen_on_a_slice_of_train_and_test_is_only_scored():
    from genkit.engine.baselines import ALPHAS

    train = dataset(60, 4, 2)
    seen, unseen = train[:20], dataset(20, 5, 2)
    # choosing on the test images themselves would pick different smoothings for these two test sets
    assert (
        trivial_baselines(train, seen, seen, 8)["pixel_histogram_alpha"]
        != trivial_baselines(train, unseen, unseen, 8)["pixel_histogram_alpha"]
    )
    rows = np.stack([d.numpy() for d in train]).reshape(60, -1).astype(np.int64)
    order = np.random.RandomState(0).permutation(60)
    held, rest = order[:6], order[6:]  # 10 % of train, seed 0
    alpha = min(ALPHAS, key=lambda a: numpy_histogram_bits(rows[rest], rows[held], a))
    for test in (seen, unseen):
        result = trivial_baselines(train, None, test, 8)
        test_rows = np.stack([d.numpy() for d in test]).reshape(len(test), -1).astype(np.int64)
        assert result["pixel_histogram_alpha"] == alpha
        assert result["pixel_histogram"] == pytest.approx(numpy_histogram_bits(rows, test_rows, alpha), rel=1e-12)
