"""The Fréchet Inception Distance (Heusel et al. 2017) between a model's samples and images of its data set.

Each set of N images is summarised by the mean μ and the covariance Σ (unbiased, N − 1) of its
features, and FID = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½). The features are the 2048-d pool
features of Inception-v3 as torch-fidelity ports them from the TensorFlow graph that the original
implementation (TTUR) and the papers' figures use: the network takes ``uint8`` RGB images
``(B, 3, H, W)`` of any size and resizes them to 299×299 itself, with TensorFlow 1's bilinear
interpolation. genkit hands it the images as they are, greyscale repeated to three channels.

The feature network is an argument of :func:`fid`: anything that maps ``uint8`` ``(B, 3, H, W)``
images to ``(B, D)`` features. :func:`inception_network` builds torch-fidelity's, with its weights
from torch's checkpoint cache (downloaded there by torch on first use) or from a given file.

FID is biased: its expectation falls as N grows, so only figures at the same N compare, and papers
report N = 50,000.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from genkit.errors import ConfigError, DataError, first_line, is_out_of_memory

PACKAGE = "torch_fidelity"
INCEPTION_MODULE = "torch_fidelity.feature_extractor_inceptionv3"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INSTALL = "pip install --no-deps torch-fidelity"

FeatureNetwork = Callable[[Tensor], Tensor]


# --- the arithmetic ------------------------------------------------------------------------------


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``(D,)`` and the unbiased covariance ``(D, D)`` of ``(N, D)`` features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ConfigError(f"FID needs the features of 2 or more images, found an array of shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½, all in float64.

    Σ₁Σ₂ is not symmetric, but it has the eigenvalues of the symmetric positive semi-definite
    Σ₁^½ Σ₂ Σ₁^½, so tr (Σ₁Σ₂)^½ is the sum of the square roots of that matrix's eigenvalues, which
    ``eigh`` gives accurately also where N < D leaves both covariances singular. Eigenvalues that
    rounding pushes below zero are taken as zero.
    """
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    product = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def to_rgb(images: Tensor) -> Tensor:
    """``uint8`` images ``(B, H, W, C)`` as the feature network takes them: ``(B, 3, H, W)``, greyscale repeated."""
    channels = images.shape[-1]
    if channels not in (1, 3):
        raise ConfigError(f"FID compares greyscale or RGB images, and these have {channels} channels")
    return rearrange(images, "b h w c -> b c h w").expand(-1, 3, -1, -1).contiguous()


@torch.no_grad()
def features(network: FeatureNetwork, images: Tensor, *, batch_size: int, device: torch.device | str) -> np.ndarray:
    """The network's features ``(N, D)`` of ``uint8`` images ``(N, H, W, C)``, float64, ``batch_size`` at a time."""
    out = [network(to_rgb(batch).to(device)).double().cpu() for batch in images.split(batch_size)]
    return torch.cat(out).numpy()


def fid(
    network: FeatureNetwork, first: Tensor, second: Tensor, *, batch_size: int = 50, device: torch.device | str = "cpu"
) -> float:
    """The FID between two sets of ``uint8`` images ``(N, H, W, C)`` through ``network``'s features."""
    one = gaussian(features(network, first, batch_size=batch_size, device=device))
    two = gaussian(features(network, second, batch_size=batch_size, device=device))
    return frechet_distance(*one, *two)


@torch.no_grad()
def model_fid(
    model: nn.Module,
    reference: Tensor,
    network: FeatureNetwork,
    *,
    batch_size: int,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> dict[str, float | int]:
    """``fid`` between ``len(reference)`` samples of ``model`` (its default sampler, temperature 1) and ``reference``;
    also ``fid_images``, that number."""
    n = len(reference)
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    samples = torch.cat([model.sample(size, generator=generator).cpu() for size in sizes])
    return {"fid": fid(network, samples, reference, batch_size=batch_size, device=device), "fid_images": n}


# --- the network ---------------------------------------------------------------------------------


class InceptionPool(nn.Module):
    """torch-fidelity's Inception-v3 giving its 2048-d pool features alone."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor(images)[0]


def inception_cache() -> Path:
    """Where torch-fidelity keeps its Inception-v3 weights: torch's cache, ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def inception_network(weights: str | Path | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """torch-fidelity's Inception-v3 (2048-d pool features), with its weights from ``weights`` or torch's cache.

    Without ``weights`` and without a cached copy, torch downloads the file into the cache; where that
    fails (no network) it stops with one line naming the file and where to put it.
    """
    module = _inception_module()
    if weights is None:
        path = inception_cache() / INCEPTION_FILE
        if not path.is_file():
            _download(module.URL_INCEPTION_V3, path)
        option = ""
    else:
        path = Path(weights)
        if not path.is_file():
            raise DataError(f"--fid-features {path}: file not found; expected torch-fidelity's {INCEPTION_FILE}")
        option = "--fid-features "
    _check_weights(path, option)
    try:
        extractor = module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(path))
    except RuntimeError as exc:  # load_state_dict: missing, unexpected or mis-shaped weights
        if is_out_of_memory(exc):
            raise
        raise DataError(
            f"{option}{path}: not the weights of torch-fidelity's Inception-v3 ({first_line(exc)}); "
            f"expected {INCEPTION_FILE}"
        ) from None
    return InceptionPool(extractor).to(device).eval()


def _inception_module():
    """torch-fidelity's Inception-v3 module, imported without the package's ``__init__``.

    That ``__init__`` imports every feature extractor, and some import torchvision, which genkit
    does not need and which, from PyPI, does not import beside a CPU-only torch. The Inception
    module itself needs only torch and two helper modules of the package. The package is entered in
    ``sys.modules`` only while the module loads, so that a later ``import torch_fidelity`` runs the
    real ``__init__``.
    """
    if INCEPTION_MODULE in sys.modules:
        return sys.modules[INCEPTION_MODULE]
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        raise ConfigError(f"--fid needs torch-fidelity (Inception-v3 features), which is not installed: {INSTALL}")
    if PACKAGE in sys.modules:
        return importlib.import_module(INCEPTION_MODULE)
    before = set(sys.modules)
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)  # its __path__, without running __init__
    try:
        return importlib.import_module(INCEPTION_MODULE)
    finally:
        for name in set(sys.modules) - before:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                del sys.modules[name]


def _download(url: str, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except (OSError, ValueError) as exc:  # no network, a proxy's refusal, a read-only cache
        raise DataError(
            f"FID needs torch-fidelity's Inception-v3 weights {INCEPTION_FILE}, which are not in {path.parent} and "
            f"could not be downloaded from {url} ({first_line(exc)}): put the file there, or give its path with "
            "--fid-features PATH"
        ) from None


def _check_weights(path: Path, option: str) -> None:
    """The file loads as a plain state dict, with no code in its pickle, before torch-fidelity loads it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling other bytes fails in any exception type
        if is_out_of_memory(exc):
            raise
        raise DataError(
            f"{option}{path}: not a PyTorch state dict that loads with weights_only=True ({type(exc).__name__}); "
            f"expected torch-fidelity's Inception-v3 weights {INCEPTION_FILE}"
        ) from None
    if not isinstance(state, dict):
        raise DataError(f"{option}{path}: holds a {type(state).__name__}, not a state dict; expected {INCEPTION_FILE}")
