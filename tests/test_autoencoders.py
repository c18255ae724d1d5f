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
