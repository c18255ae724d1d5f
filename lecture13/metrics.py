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

**The course's sample-quality protocol** (notebooks 01, 05, 06 and the README use it alike):
:data:`QUALITY_SAMPLES` = 1,000 samples of a model, scored against the 2,000 grayscale test images
of the embedded subset in the classifier's feature space (:func:`frechet_to_test`). The Fréchet
distance is biased upwards at finite n, so scores are comparable only at the same n; the real
references (:func:`quality_references`: 1,000 real training images, grayscale or binarized, over
several draws) give the score a perfect model would reach and the metric's noise at that n.
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


# --------------------------------------------------------------------------- the course's protocol
QUALITY_SAMPLES = 1000   # samples per model for every sample-quality number in the course


def test_features(classifier: FeatureClassifier | None = None) -> torch.Tensor:
    """Features (2000, 128) of the embedded subset's grayscale test images: the reference set."""
    from .data import tensors

    return image_features(tensors("test", "unit", subset="embedded")[0], classifier)


def frechet_to_test(images: torch.Tensor, reference: torch.Tensor | None = None,
                    classifier: FeatureClassifier | None = None) -> float:
    """Fréchet distance of images in [0, 1] to the 2,000 grayscale test images (the protocol's score;
    pass ``reference`` = :func:`test_features` to reuse it)."""
    return protocol_scores(images, reference, classifier)["frechet"]


@torch.no_grad()
def protocol_scores(images: torch.Tensor, reference: torch.Tensor | None = None,
                    classifier: FeatureClassifier | None = None, threshold: float = 0.9,
                    frechet=None) -> dict:
    """Both numbers of the protocol from one pass of the classifier: the Fréchet distance to the
    grayscale test images and the fraction of images it is more than ``threshold`` sure of.
    ``frechet(features, reference)`` computes the distance (default :func:`frechet_distance`;
    notebook 05 passes the student's own)."""
    reference = test_features(classifier) if reference is None else reference
    classifier = classifier or feature_classifier()
    frechet = frechet_distance if frechet is None else frechet
    features = image_features(images, classifier)
    sure = torch.softmax(classifier.head(features), dim=1).max(dim=1).values > threshold
    return {"frechet": float(frechet(features, reference)), "confident": float(sure.float().mean()),
            "samples": len(images)}


def quality_references(n: int = QUALITY_SAMPLES, draws: int = 5, seed: int = 0,
                       reference: torch.Tensor | None = None, classifier: FeatureClassifier | None = None,
                       frechet=None) -> dict:
    """What real images score under the protocol: ``draws`` random sets of ``n`` embedded training
    images, grayscale (``"real"``: what a perfect grayscale model would reach) and binarized
    (``"binarized"``: what a perfect model of the binarized data would reach), each with the mean and
    spread of the Fréchet distance and of the confident fraction. The spread is the metric's noise at n.
    ``frechet``: as in :func:`protocol_scores`."""
    from .data import binarize, tensors

    reference = test_features(classifier) if reference is None else reference
    train = tensors("train", "unit", subset="embedded")[0]
    generator = torch.Generator().manual_seed(seed)
    out = {}
    picks = [torch.randperm(len(train), generator=generator)[:n] for _ in range(draws)]
    for kind, transform in (("real", lambda x: x), ("binarized", binarize)):
        fd, conf = [], []
        for idx in picks:
            scores = protocol_scores(transform(train[idx]), reference, classifier, frechet=frechet)
            fd.append(scores["frechet"])
            conf.append(scores["confident"])
        fd, conf = torch.tensor(fd), torch.tensor(conf)
        out[kind] = {"frechet": float(fd.mean()), "frechet_std": float(fd.std()) if draws > 1 else 0.0,
                     "confident": float(conf.mean()), "confident_std": float(conf.std()) if draws > 1 else 0.0,
                     "n": n, "draws": draws}
    return out


# --------------------------------------------------------------------------- precision and recall
@torch.no_grad()
def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) in a feature space.

    Each set is approximated by the union of balls around its points, of radius the distance to
    the point's k-th nearest neighbour in its own set. **Precision** = the fraction of generated
    points inside the real set's balls (are samples realistic?); **recall** = the fraction of real
    points inside the generated set's balls (is every part of the data produced?). A Fréchet
    distance mixes the two; a mode-dropping model has high precision and low recall.
    """
    def radii(f: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(f, f)
        return d.kthvalue(k + 1, dim=1).values       # +1: the point itself is at distance 0

    real, fake = real_features.double(), fake_features.double()
    r_real, r_fake = radii(real), radii(fake)
    cross = torch.cdist(fake, real)                    # (N_fake, N_real)
    precision = (cross <= r_real.unsqueeze(0)).any(dim=1).double().mean()
    recall = (cross <= r_fake.unsqueeze(1)).any(dim=0).double().mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}


# --------------------------------------------------------------------------- memorisation
@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor, k: int = 1,
                       batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the ``k`` nearest images of ``pool`` in pixel space (Euclidean).

    Returns ``(distances, indices)``, both (N_queries, k), nearest first; ``batch_size`` queries at a
    time (128 against a pool of 60,000: a 31 MB block of distances). Images of any shape
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
