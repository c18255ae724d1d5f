"""Measuring a model that has no likelihood: Fréchet distance, nearest neighbours, mode coverage.

* :func:`frechet_distance` fits a Gaussian to each of two feature sets and returns the
  squared Fréchet (2-Wasserstein) distance between the Gaussians (Dowson & Landau 1982;
  used as FID by Heusel et al. 2017):

      d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})

  The features are the penultimate activations of the shipped Fashion-MNIST classifier
  (:mod:`lecture13.classifier`), so nothing is downloaded. Two finite samples of the *same*
  distribution still have d² > 0; the real-test vs real-train distance at the same sample
  size is the *floor* a perfect generator would reach.
* :func:`nearest_neighbours` finds, for each query image, the closest images of a pool
  (Euclidean distance in pixel space): does the generator copy its training set?
* :func:`mode_coverage` (from :mod:`lecture13.toy`) counts the modes of a 2-D mixture a
  generator covers, and the fraction of its samples that are high quality.
"""
from __future__ import annotations

import torch

from .classifier import FeatureClassifier
from .toy import mode_coverage  # noqa: F401  (re-exported: the toy GAN metrics live together here)


# --------------------------------------------------------------------------- Fréchet distance
def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of ``features`` (N, D), in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be a (N, D) matrix with N ≥ 2 rows, got shape {tuple(features.shape)}")
    f = features.detach().double().cpu()
    mu = f.mean(dim=0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix, by its eigendecomposition."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance_from_statistics(mu_a: torch.Tensor, cov_a: torch.Tensor,
                                     mu_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """d² between N(μ_a, Σ_a) and N(μ_b, Σ_b)."""
    root_a = _sqrtm_psd(cov_a)
    # Tr (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2} = Σ_i sqrt(λ_i) over the eigenvalues of a symmetric PSD matrix.
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root
    return max(float(d2), 0.0)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Squared Fréchet distance between Gaussians fitted to two feature sets (N_a, D), (N_b, D)."""
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"need two (N, D) feature matrices with the same D, got {tuple(features_a.shape)} "
                         f"and {tuple(features_b.shape)}")
    return frechet_distance_from_statistics(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


def feature_classifier() -> FeatureClassifier:
    """The shipped classifier (``pretrained("classifier")``), loaded once per process."""
    global _CLASSIFIER
    if _CLASSIFIER is None:
        from .checkpoints import pretrained

        _CLASSIFIER = pretrained("classifier")
    return _CLASSIFIER


_CLASSIFIER: FeatureClassifier | None = None


@torch.no_grad()
def image_features(images: torch.Tensor, classifier: FeatureClassifier | None = None,
                   batch_size: int = 200) -> torch.Tensor:
    """φ(x) of images in [0, 1], shape (N, 1, 28, 28): the classifier's penultimate features (N, 128)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 1, 28, 28), got {tuple(images.shape)}")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                         "convert a tanh generator's output with (x + 1) / 2")
    classifier = classifier or feature_classifier()
    classifier.eval()
    images = images.float()
    return torch.cat([classifier.features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def class_probabilities(images: torch.Tensor, classifier: FeatureClassifier | None = None,
                        batch_size: int = 200) -> torch.Tensor:
    """p(class | x) of the shipped classifier for images in [0, 1], shape (N, 1, 28, 28): (N, 10)."""
    features = image_features(images, classifier, batch_size)
    classifier = classifier or feature_classifier()
    return torch.softmax(classifier.head(features), dim=1)


def confident_fraction(images: torch.Tensor, threshold: float = 0.9,
                       classifier: FeatureClassifier | None = None) -> float:
    """The fraction of images the shipped classifier assigns to one class with probability
    above ``threshold``: a crude test of "looks like a garment of some class". Compare it with
    real images of the same kind (binarized real images for binary samples): the classifier was
    trained on grayscale images, so even real binarized images score below real grayscale ones."""
    return float((class_probabilities(images, classifier).max(dim=1).values > threshold).float().mean())


def frechet_distance_images(images_a: torch.Tensor, images_b: torch.Tensor,
                            classifier: FeatureClassifier | None = None) -> float:
    """Fréchet distance between two image sets in [0, 1], in the classifier's feature space."""
    return frechet_distance(image_features(images_a, classifier), image_features(images_b, classifier))


# --------------------------------------------------------------------------- memorisation
@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor, k: int = 1,
                       batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the ``k`` nearest images of ``pool`` in pixel space (Euclidean).

    Returns ``(distances, indices)``, both (N_queries, k), nearest first. Images of any shape
    (N, ...) are compared flattened; both sets must have the same per-image shape and range.
    """
    if queries.shape[1:] != pool.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape)} and pool {tuple(pool.shape)} must have the same image shape")
    if k > len(pool):
        raise ValueError(f"k={k} is larger than the pool ({len(pool)} images)")
    q, p = queries.flatten(1).float(), pool.flatten(1).float()
    distances, indices = [], []
    for i in range(0, len(q), batch_size):
        d, idx = torch.cdist(q[i:i + batch_size], p).topk(k, dim=1, largest=False)
        distances.append(d)
        indices.append(idx)
    return torch.cat(distances), torch.cat(indices)
