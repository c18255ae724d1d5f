"""The convolutional autoencoder, its L2 loss, and the linear probe on its features."""
import pytest
import torch

from lecture13 import autoencoders as ae
from lecture13.data import tensors
from lecture13.training import train


@pytest.fixture(scope="module")
def images():
    return tensors("train", "unit", limit=512)


@pytest.mark.parametrize("latent_dim", [2, 32])
def test_shapes_dtypes_and_range(images, latent_dim):
    model = ae.Autoencoder(latent_dim=latent_dim, channels=8, hidden=64)
    x = images[0][:6]
    z = model.encode(x)
    assert z.shape == (6, latent_dim) and z.dtype == torch.float32
    x_hat = model(x)
    assert x_hat.shape == x.shape and x_hat.dtype == torch.float32
    assert 0 <= x_hat.min() and x_hat.max() <= 1


def test_bad_input_is_explained():
    model = ae.Autoencoder(latent_dim=4, channels=8, hidden=32)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model(torch.zeros(3, 784))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        model.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="same shape"):
        ae.reconstruction_loss(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28))


def test_reconstruction_loss_sums_pixels_and_averages_images():
    x, x_hat = torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28)
    x_hat[0] = 0.5                                   # image 0: 784 · 0.25 = 196; image 1: 0
    assert ae.reconstruction_loss(x_hat, x).item() == pytest.approx(98.0)


def test_training_lowers_the_reconstruction_error(images):
    x = images[0][:256]
    torch.manual_seed(0)                                   # the initial weights, whatever ran before
    model = ae.Autoencoder(latent_dim=8, channels=8, hidden=64)
    before = ae.reconstruction_error(model, x).mean()
    history = train(model, list(x.split(64)), ae.autoencoder_loss, epochs=6, lr=3e-3, progress=False, device="cpu")
    assert ae.reconstruction_error(model, x).mean() < 0.75 * before      # 0.62 measured (seeds 0-5: 0.55-0.69)
    assert sum(history.series("loss")[-4:]) < sum(history.series("loss")[:4])


def test_standardize_uses_training_statistics_only():
    train_f, test_f = torch.tensor([[1.0, 10.0], [3.0, 30.0]]), torch.tensor([[5.0, 50.0]])
    a, b = ae.standardize(train_f, test_f)
    assert torch.allclose(a.mean(0), torch.zeros(2), atol=1e-6)
    std = train_f.std(0) + 1e-6
    assert torch.allclose(b, (test_f - train_f.mean(0)) / std)


def test_few_labels_is_balanced_and_seeded():
    _, labels = tensors("train", "unit", limit=2000)
    idx = ae.few_labels(labels, 10, seed=0)
    assert len(idx) == 100 and len(idx.unique()) == 100
    assert torch.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    assert torch.equal(idx, ae.few_labels(labels, 10, seed=0)) and not torch.equal(idx, ae.few_labels(labels, 10, seed=1))


def test_linear_probe_learns_a_separable_problem_and_not_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    features = torch.randn(200, 8, generator=g) + 4 * torch.nn.functional.one_hot(labels, 8).float()
    assert ae.linear_probe(features[:100], labels[:100], features[100:], labels[100:]) > 0.9
    noise = torch.randn(200, 8, generator=g)
    assert ae.linear_probe(noise[:100], labels[:100], noise[100:], labels[100:]) < 0.5


def test_linear_autoencoder_is_optimal_and_improves_with_size(images):
    x = images[0][:300]
    errors = []
    for d in (1, 4, 16):
        mean, basis = ae.linear_autoencoder(x, d)
        assert basis.shape == (784, d) and torch.allclose(basis.T @ basis, torch.eye(d, dtype=torch.float64), atol=1e-8)
        errors.append(ae.linear_reconstruction_error(x, mean, basis).mean())
        # any other orthonormal basis of the same size reconstructs the training data worse
        other, _ = torch.linalg.qr(basis + 0.1 * torch.randn(784, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)))
        assert ae.linear_reconstruction_error(x, mean, other).mean() > errors[-1]
    assert errors[0] > errors[1] > errors[2]


def test_fit_by_epochs_passes_the_precision_to_the_training_loop(images):
    x = list(images[0][:64].split(32))
    options = {"epochs": 1, "lr": 1e-3, "seed": 0, "progress": False, "device": "cpu"}
    model = ae.Autoencoder(latent_dim=4, channels=4, hidden=16)
    history = ae.fit_by_epochs(model, x, ae.autoencoder_loss, {**options, "precision": "bf16"})
    assert len(history.steps) == 2
    with pytest.raises(ValueError, match="precision must be one of"):
        ae.fit_by_epochs(model, x, ae.autoencoder_loss, {**options, "precision": "fp16"})


def test_softmax_regression_reaches_the_one_optimum_whatever_else_is_solved_with_it():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (3, 60), generator=g)
    features = torch.randn(3, 60, 5, generator=g) + 3 * torch.nn.functional.one_hot(labels, 5).float()
    weight, bias = ae.fit_softmax_regression(features, labels, weight_decay=0.1)
    # the optimum: the gradient of mean cross-entropy + (0.1 / 2) ||W||^2 vanishes
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    loss = sum(torch.nn.functional.cross_entropy(features[r] @ w[r] + b[r], labels[r]) for r in range(3)) + 0.05 * w.pow(2).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-3 and b.grad.abs().max() < 1e-3
    # solved alone, or next to other problems, each one ends at the same weights
    alone, _ = ae.fit_softmax_regression(features[1:2], labels[1:2], weight_decay=0.1)
    assert torch.allclose(alone[0], weight[1], atol=1e-3)
    test_labels = torch.arange(40) % 4
    test = torch.randn(40, 5, generator=g) + 3 * torch.nn.functional.one_hot(test_labels, 5).float()
    accuracies = ae.linear_probes(features, labels, test, test_labels)
    assert accuracies.shape == (3,) and (accuracies > 0.8).all()
    assert accuracies[0].item() == pytest.approx(ae.linear_probe(features[0], labels[0], test, test_labels))
    with pytest.raises(ValueError, match=r"\(R, n, f\)"):
        ae.linear_probes(features[0], labels[0], test, test_labels)


def test_paired_verdict_names_a_winner_only_when_the_difference_is_consistent():
    a = torch.tensor([0.80, 0.82, 0.81, 0.83, 0.80])
    assert ae.paired_verdict(a, a - 0.05, "A", "B").startswith("A beat B: A ahead in 5 of 5 draws, mean difference +5.0 ± 0.0")
    assert ae.paired_verdict(a - 0.05, a, "A", "B").startswith("A lost to B: A ahead in 0 of 5")
    noisy = a + torch.tensor([0.02, -0.02, 0.01, -0.01, 0.0])
    assert ae.paired_verdict(noisy, a, "A", "B").startswith("no consistent difference between A and B: A ahead in 2 of 5")
    with pytest.raises(ValueError, match="paired"):
        ae.paired_verdict(a, a[:3], "A", "B")


def test_gaussian_mixture_one_component_is_the_sample_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 3, generator=g) @ torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.3]]) + 5
    fit = ae.fit_gaussian_mixture(z, components=1, ridge=0.0)
    assert torch.allclose(fit.means[0], z.double().mean(0)) and torch.allclose(fit.covariances[0], torch.cov(z.T.double(), correction=0))
    samples = fit.sample(20000, torch.Generator().manual_seed(1))
    assert samples.dtype == torch.float32 and samples.shape == (20000, 3)
    assert torch.allclose(samples.mean(0).double(), fit.means[0], atol=0.05)
    assert torch.allclose(torch.cov(samples.T).double(), fit.covariances[0], atol=0.1)
    assert torch.equal(samples, fit.sample(20000, torch.Generator().manual_seed(1)))


def test_gaussian_mixture_em_finds_separated_clusters_and_raises_the_likelihood():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    which = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), 3000, replacement=True, generator=g)
    z = centres[which] + 0.5 * torch.randn(3000, 2, generator=g)
    one, three = ae.fit_gaussian_mixture(z, 1), ae.fit_gaussian_mixture(z, 3, steps=30, seed=0)
    assert three.log_prob(z).mean() > one.log_prob(z).mean() + 1.0
    order = three.means[:, 0].argsort()                       # left, top, right: x = -6, 0, 6
    assert torch.allclose(three.means[order].float(), centres[[0, 2, 1]], atol=0.1)
    assert torch.allclose(three.weights[order].float(), torch.tensor([0.5, 0.2, 0.3]), atol=0.03)
    assert torch.allclose(three.covariances[order].float(), 0.25 * torch.eye(2).expand(3, 2, 2), atol=0.05)
    few = ae.fit_gaussian_mixture(z, 3, steps=1, seed=0)
    assert three.log_prob(z).mean() >= few.log_prob(z).mean()
    with pytest.raises(ValueError, match="components"):
        ae.fit_gaussian_mixture(z[:2], 3)
