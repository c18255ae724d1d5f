"""Fréchet distance, nearest neighbours, the feature classifier."""
import pytest
import torch

from lecture13 import classifier, metrics, toy


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric():
    torch.manual_seed(0)
    a = torch.randn(500, 16) @ torch.randn(16, 16)
    b = torch.randn(400, 16) * 2 + 1
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6 * float(a.var(0).sum()))
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-6)
    assert metrics.frechet_distance(a, b) > 1.0


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    # For diagonal covariances: d² = ‖μa − μb‖² + Σ_i (σa_i − σb_i)².
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    d2 = metrics.frechet_distance_from_statistics(mu_a.double(), torch.diag(sd_a ** 2).double(),
                                                  mu_b.double(), torch.diag(sd_b ** 2).double())
    assert d2 == pytest.approx(float((mu_a - mu_b).pow(2).sum() + (sd_a - sd_b).pow(2).sum()), rel=1e-9)


def test_frechet_distance_grows_with_a_shift_and_rejects_bad_shapes():
    torch.manual_seed(0)
    a = torch.randn(2000, 4)
    small, large = metrics.frechet_distance(a, a + 0.1), metrics.frechet_distance(a, a + 1.0)
    assert small == pytest.approx(4 * 0.01, rel=1e-4) and large == pytest.approx(4.0, rel=1e-4)
    with pytest.raises(ValueError, match="same D"):
        metrics.frechet_distance(a, torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        metrics.frechet_distance(torch.randn(10), a)


def test_nearest_neighbours_find_exact_copies_and_match_brute_force():
    torch.manual_seed(0)
    pool = torch.rand(50, 1, 4, 4)
    queries = torch.cat([pool[[7, 3]], torch.rand(3, 1, 4, 4)])
    d, idx = metrics.nearest_neighbours(queries, pool, k=2, batch_size=2)
    assert d.shape == idx.shape == (5, 2)
    assert idx[0, 0] == 7 and idx[1, 0] == 3 and d[:2, 0].abs().max() < 1e-3
    brute = torch.cdist(queries.flatten(1), pool.flatten(1))
    assert torch.allclose(d[:, 0], brute.min(1).values, atol=2e-3)  # cdist's matmul path rounds near 0
    assert (d[:, 0] <= d[:, 1]).all()
    with pytest.raises(ValueError, match="same image shape"):
        metrics.nearest_neighbours(torch.rand(2, 1, 5, 5), pool)


def test_image_features_reject_signed_images_with_a_hint():
    model = classifier.FeatureClassifier(width=4, features=8)
    assert metrics.image_features(torch.rand(3, 1, 28, 28), model).shape == (3, 8)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        metrics.image_features(torch.rand(3, 1, 28, 28) * 2 - 1, model)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        metrics.image_features(torch.rand(3, 28, 28), model)


def test_mode_coverage_counts_modes_of_the_ring():
    ring = toy.ring_of_gaussians()
    g = torch.Generator().manual_seed(0)
    assert metrics.mode_coverage(ring.sample(2000, g), ring)[0] == 8
    collapsed = ring.centres[:2].repeat(500, 1) + 0.01 * torch.randn(1000, 2, generator=g)
    modes, quality = metrics.mode_coverage(collapsed, ring)
    assert modes == 2 and quality > 0.95


def test_classifier_training_loss_falls():
    from lecture13 import data, training

    model = classifier.FeatureClassifier(width=8, features=32)
    batches = data.loader("train", "unit", batch_size=64, with_labels=True, limit=640)
    history = training.train(model, batches, classifier.classification_loss, epochs=3, progress=False, lr=3e-3)
    losses = history.series("loss", per="epoch")
    assert losses[-1] < losses[0] - 0.3
