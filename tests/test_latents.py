"""The paths between two encodings (``genkit.latents.interpolate``) and the check that latents fit a model's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genkit.errors import ConfigError, DataError
from genkit.latents import POSTERIOR_MEAN, Latents, LatentTensor, check_latents, interpolate

LAYOUT = [LatentTensor("layer_0", (2, 1, 1), layer=0, resolution=1), LatentTensor("layer_1", (2, 4, 4), 1, 4)]


def latents(seed: int, rows: int = 3, dtype=torch.float32) -> Latents:
    g = torch.Generator().manual_seed(seed)
    return Latents({s.name: torch.randn(rows, *s.shape, generator=g, dtype=dtype) for s in LAYOUT}, POSTERIOR_MEAN)


def numpy_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """White (2016), written out for one pair of flat vectors in float64."""
    omega = np.arccos(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def test_linear_interpolation_walks_the_straight_line_at_evenly_spaced_steps_row_by_row():
    start, end = latents(0), latents(1)
    between = interpolate(start, end, 5, "linear")
    assert between.count == 3 * 5 and between.kind == POSTERIOR_MEAN
    for name in start.tensors:
        a, b = start.tensors[name].double().numpy(), end.tensors[name].double().numpy()
        got = between.tensors[name].reshape(3, 5, *a.shape[1:]).numpy()
        for j, t in enumerate(np.linspace(0, 1, 5)):
            np.testing.assert_allclose(got[:, j], ((1 - t) * a + t * b).astype(np.float32), rtol=1e-6, atol=1e-7)


def test_spherical_interpolation_is_slerp_of_each_images_tensor_taken_as_one_vector():
    start, end = latents(2, dtype=torch.float64), latents(3, dtype=torch.float64)
    between = interpolate(start, end, 4, "spherical")
    for name in start.tensors:
        a, b = start.tensors[name].flatten(1).numpy(), end.tensors[name].flatten(1).numpy()
        got = between.tensors[name].reshape(3, 4, -1).numpy()
        for row in range(3):
            for j, t in enumerate(np.linspace(0, 1, 4)):
                np.testing.assert_allclose(got[row, j], numpy_slerp(a[row], b[row], t), rtol=1e-12, atol=1e-12)


def test_spherical_interpolation_between_equal_norms_keeps_the_norm_and_turns_at_a_constant_rate():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(1, 64, generator=g, dtype=torch.float64), torch.randn(1, 64, generator=g, dtype=torch.float64)
    b = b * a.norm() / b.norm()
    path = interpolate(Latents({"z": a}, "flow z"), Latents({"z": b}, "flow z"), 6).tensors["z"]
    omega = torch.arccos((a * b).sum() / a.norm() ** 2)
    for j, point in enumerate(path):
        assert torch.isclose(point.norm(), a.norm(), rtol=1e-12)
        angle = torch.arccos(((point * a[0]).sum() / a.norm() ** 2).clamp(-1, 1))
        assert torch.isclose(angle, omega * j / 5, atol=1e-7)


def test_both_ends_of_either_path_are_the_two_encodings_exactly():
    start, end = latents(5), latents(6)
    for path in ("spherical", "linear"):
        between = interpolate(start, end, 7, path)
        for name in start.tensors:
            rows = between.tensors[name].reshape(3, 7, *start.tensors[name].shape[1:])
            assert rows.dtype == torch.float32
            assert torch.equal(rows[:, 0], start.tensors[name]) and torch.equal(rows[:, -1], end.tensors[name])


def test_spherical_interpolation_between_parallel_or_zero_vectors_is_the_straight_line():
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 4.0, 6.0], [1.0, -1.0, 2.0]], dtype=torch.float64)
    start, end = Latents({"z": a}, "flow z"), Latents({"z": b}, "flow z")
    spherical = interpolate(start, end, 5, "spherical").tensors["z"]
    assert torch.isfinite(spherical).all()
    assert torch.allclose(spherical, interpolate(start, end, 5, "linear").tensors["z"], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "steps, path, end, message",
    [
        (1, "spherical", None, "expected 2 or more"),
        (4, "curved", None, "'curved': expected spherical or linear"),
        (4, "linear", Latents({"z": torch.zeros(3, 2)}, "flow z"), "the two ends hold different latents"),
    ],
)
def test_interpolation_refuses_a_path_it_cannot_draw_in_one_line(steps, path, end, message):
    with pytest.raises(ConfigError, match=message):
        interpolate(latents(0), end or latents(1), steps, path)


def mutated(**change) -> Latents:
    tensors = dict(latents(0).tensors)
    for name, value in change.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    return Latents(tensors, POSTERIOR_MEAN)


@pytest.mark.parametrize(
    "bad, message",
    [
        (mutated(layer_1=None), r"where: holds 1 tensor \(layer_0\), and the model's latents are 2 tensors"),
        (
            Latents({"layer_0": torch.zeros(3, 2, 1, 1), "layer_9": torch.zeros(3, 2, 4, 4)}, POSTERIOR_MEAN),
            "holds tensor 'layer_9' and no 'layer_1'",
        ),
        (mutated(layer_1=torch.zeros(3, 2, 8, 8)), r"'layer_1' has shape \(3, 2, 8, 8\), expected \(N, 2, 4, 4\)"),
        (mutated(layer_1=torch.zeros(3, 2, 4, 4, dtype=torch.int64)), "'layer_1' is int64, not floating point"),
        (mutated(layer_1=torch.zeros(2, 2, 4, 4)), "'layer_1' holds 2 images, 'layer_0' holds 3"),
        (Latents(latents(0).tensors, "posterior median"), "kind 'posterior median'"),
    ],
)
def test_latents_that_do_not_fit_the_layout_are_refused_naming_the_tensor(bad, message):
    with pytest.raises(DataError, match=message):
        check_latents(bad, LAYOUT, "where")
