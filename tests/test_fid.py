"""The Fréchet Inception Distance (``genkit.engine.fid``) against an independent NumPy/SciPy computation, through a
small stand-in for Inception-v3 (these machines cannot fetch its weights), and ``genkit eval --fid`` end to end."""

from __future__ import annotations

import importlib.util
import json
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from pretrained_fixtures import TINY_VDVAE, perturbed

from genkit.cli import main
from genkit.cli.model_options import generator_for
from genkit.engine import fid
from genkit.errors import ConfigError, DataError
from genkit.models import build_model
from genkit.pretrained import load_model_dir, save_pretrained
from genkit.recipe import load_recipe


class StandIn(torch.nn.Module):
    """A fixed random projection of the pixels, checking that it is handed what Inception-v3 takes."""

    def __init__(self, pixels: int, dims: int, seed: int = 0):
        super().__init__()
        self.projection = torch.randn(pixels, dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3
        self.seen.append(images)
        return images.flatten(1).double() @ self.projection


def numpy_fid(first: np.ndarray, second: np.ndarray, projection: np.ndarray) -> float:
    """FID as TTUR's reference computes it: the images as RGB (B, 3, H, W), projected, then scipy's sqrtm."""

    def moments(images):
        rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
        feats = np.transpose(rgb, (0, 3, 1, 2)).reshape(len(images), -1).astype(np.float64) @ projection
        return feats.mean(axis=0), np.cov(feats, rowvar=False)

    (mu1, s1), (mu2, s2) = moments(first), moments(second)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def images(n: int, seed: int, channels: int = 1, size: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, channels), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("channels", [1, 3])
def test_fid_matches_numpy_and_scipy_on_the_same_features(channels):
    network = StandIn(3 * 4 * 4, 6)
    first, second = images(40, 1, channels), images(30, 2, channels)
    got = fid.fid(network, first, second, batch_size=7)
    expected = numpy_fid(first.numpy(), second.numpy(), network.projection.numpy())
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_with_fewer_images_than_feature_dimensions_matches_the_eigenvalues_of_the_covariance_product():
    """N < D leaves both covariances singular, where sqrtm is unreliable; tr (Σ₁Σ₂)^½ is then the sum of the
    square roots of the eigenvalues of Σ₁Σ₂ (which are real and ≥ 0)."""
    first, second = np.random.default_rng(0).normal(size=(2, 5, 12))
    mu1, s1, mu2, s2 = first.mean(0), np.cov(first, rowvar=False), second.mean(0), np.cov(second, rowvar=False)
    trace_root = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root
    got = fid.frechet_distance(*fid.gaussian(first), *fid.gaussian(second))
    # the 8 zero eigenvalues come out of either computation as ±1e-16, whose square roots are 1e-8
    assert got == pytest.approx(expected, abs=1e-6)


def test_the_fid_of_a_set_with_itself_is_zero():
    network = StandIn(3 * 4 * 4, 6)
    same = images(20, 3)
    assert abs(fid.fid(network, same, same)) < 1e-9


def test_greyscale_images_reach_the_network_unchanged_in_all_three_channels():
    network, grey = StandIn(3 * 4 * 4, 2), images(5, 4)
    fid.features(network, grey, batch_size=2, device="cpu")
    seen = torch.cat(network.seen)
    assert [len(batch) for batch in network.seen] == [2, 2, 1]
    for channel in range(3):
        assert torch.equal(seen[:, channel], grey[..., 0])


def test_fid_needs_two_images_in_each_set():
    with pytest.raises(ConfigError, match="2 or more images"):
        fid.gaussian(np.zeros((1, 4)))


# --- genkit eval --fid --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fid")
    (out / "tiny.toml").write_text(TINY_VDVAE)
    torch.manual_seed(0)
    return save_pretrained(perturbed(build_model(load_recipe(out / "tiny.toml"))).eval(), out / "model", card=False)


@pytest.fixture
def stand_in(monkeypatch):
    """``genkit eval --fid`` with the stand-in network in place of Inception-v3, and the weights it was asked for."""
    network, asked = StandIn(3 * 8 * 8, 5), []
    monkeypatch.setattr(
        "genkit.cli.model_commands.inception_network", lambda weights, device: asked.append(weights) or network
    )
    return network, asked


def test_eval_fid_compares_n_samples_with_the_first_n_images_of_the_split(model_dir, stand_in, tmp_path):
    network, _ = stand_in
    out = tmp_path / "eval.json"
    argv = ["eval", str(model_dir), "--split", "test", "--max-images", "8", "--fid", "12", "--seed", "3"]
    assert main([*argv, "--batch-size", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    model = load_model_dir(model_dir)
    test = model.recipe.data.build("dataset").split("test")
    reference = torch.stack([test[i] for i in range(12)])
    generator = generator_for("cpu", 3)
    samples = torch.cat([model.sample(k, generator=generator) for k in (5, 5, 2)])
    assert result["fid_images"] == 12 and "bits_per_dim" in result
    assert result["fid"] == pytest.approx(fid.fid(network, samples, reference), rel=1e-12)


def test_eval_fid_passes_a_local_copy_of_the_weights_to_the_network(model_dir, stand_in, capsys, tmp_path):
    weights = tmp_path / "inception.pth"
    assert (
        main(
            [
                "eval",
                str(model_dir),
                "--split",
                "test",
                "--max-images",
                "4",
                "--fid",
                "4",
                "--fid-features",
                str(weights),
            ]
        )
        == 0
    )
    assert stand_in[1] == [str(weights)]
    assert "fid=" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--fid", "400"], "--fid 400: the test split holds 360 images"),
        (["--fid-features", "x.pth"], "--fid-features applies to --fid N"),
    ],
)
def test_eval_fid_refuses_what_it_cannot_compute_in_one_line(model_dir, stand_in, argv, message, capsys):
    assert main(["eval", str(model_dir), "--split", "test", "--max-images", "2", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


# --- torch-fidelity's Inception-v3 ----------------------------------------------------------------


def test_without_torch_fidelity_fid_says_what_to_install_in_one_line(monkeypatch):
    monkeypatch.setattr(fid, "PACKAGE", "torch_fidelity_is_not_installed")
    monkeypatch.setattr(fid, "INCEPTION_MODULE", "torch_fidelity_is_not_installed.feature_extractor_inceptionv3")
    with pytest.raises(ConfigError, match="not installed: pip install --no-deps torch-fidelity"):
        fid.inception_network()


needs_torch_fidelity = pytest.mark.skipif(
    importlib.util.find_spec("torch_fidelity") is None, reason="torch-fidelity (genkit's fid extra) is not installed"
)


@needs_torch_fidelity
def test_without_network_or_cached_weights_fid_names_the_file_and_where_to_put_it(monkeypatch, tmp_path):
    def offline(url, path, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DataError) as error:
        fid.inception_network()
    message = str(error.value)
    assert fid.INCEPTION_FILE in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "--fid-features PATH" in message and "no network" in message


@needs_torch_fidelity
def test_a_weights_file_that_is_not_a_plain_state_dict_is_refused_before_torch_fidelity_unpickles_it(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": object()}, path)  # an object: loading it would run pickled code
    with pytest.raises(DataError, match="not a PyTorch state dict that loads with weights_only=True"):
        fid.inception_network(path)


@needs_torch_fidelity
def test_torch_fidelitys_inception_gives_2048_pool_features_of_small_greyscale_images(monkeypatch, tmp_path):
    """Its weights cannot be fetched here, so random ones in its layout: this checks the loading and the plumbing."""
    module = fid._inception_module()
    monkeypatch.setattr(module, "load_state_dict_from_url", lambda *args, **kwargs: None)
    monkeypatch.setattr(module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    torch.manual_seed(0)
    torch.save(module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict(), tmp_path / "w.pth")
    monkeypatch.undo()
    network = fid.inception_network(tmp_path / "w.pth")
    feats = fid.features(network, images(2, 5, channels=1, size=8), batch_size=2, device="cpu")
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
