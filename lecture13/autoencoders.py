"""Autoencoders: compress an image to a few numbers z and rebuild it from them.

    z = f_φ(x)        (encoder: image → low-dimensional features)
    x̂ = g_θ(z)        (decoder: features → image)
    L(φ, θ) = ‖x − g_θ(f_φ(x))‖²     (L2 reconstruction loss, summed over the 784 pixels)

Nothing in the loss asks z to follow any distribution, so an autoencoder is *not* a generative
model: decoding z ~ N(0, I) gives no realistic image, and a density fitted to the codes afterwards
(:func:`fit_gaussian_mixture`, the "two-stage" generator) does better but never better than the
decoder's own reconstructions (notebook 02 measures both). What it does learn is a feature
extractor: after training, throw the decoder away and use ``f_φ`` as the input of a small
supervised model (:func:`linear_probes`).

The two halves are small reusable layers (:class:`ConvEncoder`, :class:`ConvDecoder`) that the
VAE in :mod:`lecture13.vae` builds on.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_model
from .data import loader, tensors
from .recipes import Recipe, register_recipe
from .training import History, train

IMAGE_SHAPE = (1, 28, 28)


def check_images(x: torch.Tensor, who: str) -> None:
    """Raise a clear error unless ``x`` is a float batch of 28×28 one-channel images."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} expects images of shape (N, 1, 28, 28), got {shape}; "
                         "add the channel axis with x.unsqueeze(1) or a batch axis with x[None]")
    if not x.is_floating_point():
        raise ValueError(f"{who} expects float images in [0, 1], got dtype {x.dtype}; "
                         "use lecture13.data.to_unit or binarize")


class ConvEncoder(nn.Module):
    """28×28 image → ``out_features`` numbers: three stride-2 convolutions (28→14→7→4), then an MLP."""

    def __init__(self, out_features: int, channels: int = 32, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 4, stride=2, padding=1), nn.ReLU(),                   # 14×14
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1), nn.ReLU(),        # 7×7
            nn.Conv2d(2 * channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(),    # 4×4
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, hidden), nn.ReLU(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """``in_features`` numbers → 28×28 outputs: an MLP to 7×7 feature maps, then two stride-2
    transposed convolutions (7→14→28). The mirror image of :class:`ConvEncoder`."""

    def __init__(self, in_features: int, channels: int = 32, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * channels * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (2 * channels, 7, 7)),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.ReLU(),  # 14×14
            nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),                        # 28×28
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register_model
class Autoencoder(nn.Module):
    """Convolutional autoencoder with a ``latent_dim``-dimensional code; outputs in [0, 1]."""

    def __init__(self, latent_dim: int = 32, channels: int = 32, hidden: int = 256):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        self.config = {"latent_dim": latent_dim, "channels": channels, "hidden": hidden}
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(latent_dim, channels, hidden)
        self.decoder = ConvDecoder(latent_dim, channels, hidden // 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = f_φ(x), shape (N, latent_dim): the features to keep when the decoder is thrown away."""
        check_images(x, "Autoencoder.encode")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = g_θ(z) in [0, 1] (a sigmoid on the decoder's output)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"decode expects codes of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖x − x̂‖²: the squared error summed over every pixel of each image, averaged over the batch."""
    if x_hat.shape != x.shape:
        raise ValueError(f"reconstruction {tuple(x_hat.shape)} and images {tuple(x.shape)} must have the same shape")
    return (x - x_hat).pow(2).flatten(1).sum(dim=1).mean()


def autoencoder_loss(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """The loss_fn for :func:`lecture13.training.train`."""
    return reconstruction_loss(model(x), x)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """One optimiser step on the batch ``x`` with :func:`reconstruction_loss`; returns the loss
    before the step (a float). Gradients are cleared first, so no earlier step leaks into this one."""
    optimizer.zero_grad(set_to_none=True)
    loss = reconstruction_loss(model(x), x)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def reconstruction_error(model: Autoencoder, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Per-image ‖x − x̂‖² (summed over pixels) for every image of ``x``."""
    model.eval()
    return torch.cat([(xb - model(xb)).pow(2).flatten(1).sum(dim=1) for xb in x.split(batch_size)])


@torch.no_grad()
def encode_all(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Encoder features for every image of ``x`` (for a VAE: the posterior means μ)."""
    model.eval()
    parts = [model.encode(xb) for xb in x.split(batch_size)]
    return torch.cat([p[0] if isinstance(p, tuple) else p for p in parts])


# --------------------------------------------------------------------------- the best linear autoencoder
def linear_autoencoder(x: torch.Tensor, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimal *linear* autoencoder under the L2 loss, in closed form: (mean m, basis V (784, d)).

    Encoder z = Vᵀ(x − m), decoder x̂ = V z + m, with V the top-d eigenvectors of the data's covariance
    (principal component analysis; Baldi & Hornik 1989 show no linear autoencoder does better)."""
    flat = x.flatten(1).double()
    mean = flat.mean(0)
    centered = flat - mean
    _, vectors = torch.linalg.eigh(centered.T @ centered / len(flat))   # eigenvalues in ascending order
    return mean, vectors[:, -latent_dim:].flip(1)


def linear_reconstruction_error(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per-image ‖x − x̂‖² of the linear autoencoder (mean, basis)."""
    centered = x.flatten(1).double() - mean
    return (centered - centered @ basis @ basis.T).pow(2).sum(dim=1)


# --------------------------------------------------------------------------- a density for the codes
class GaussianMixture(NamedTuple):
    """A mixture of full-covariance Gaussians in code space: weights (K,), means (K, d), covariances (K, d, d)."""
    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    def distribution(self) -> torch.distributions.MixtureSameFamily:
        return torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.MultivariateNormal(self.means, covariance_matrix=self.covariances))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row of ``z`` (N, d)."""
        return self.distribution().log_prob(z.double())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes (float32): a component by its weight, then mean + L·ε with ε ~ N(0, I) (seeded)."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], dtype=torch.float64, generator=generator)
        chol = torch.linalg.cholesky(self.covariances)
        return (self.means[component] + (chol[component] @ eps[:, :, None]).squeeze(2)).float()


def fit_gaussian_mixture(z: torch.Tensor, components: int = 1, steps: int = 20, seed: int = 0,
                         ridge: float = 1e-4) -> GaussianMixture:
    """Fit a mixture of ``components`` full-covariance Gaussians to the codes ``z`` (N, d) by ``steps``
    rounds of EM (maximum likelihood), starting from ``components`` distinct codes as means and the
    data's covariance for each component. One component gives the sample mean and (biased)
    covariance in one step. ``ridge`` × the mean variance is added to every covariance's diagonal so it
    stays positive definite. This is the "two-stage" generator: an autoencoder, then a density
    fitted to its codes afterwards."""
    if z.dim() != 2 or len(z) < components:
        raise ValueError(f"need codes of shape (N, d) with N ≥ components={components}, got {tuple(z.shape)}")
    z = z.detach().double()
    n, d = z.shape
    jitter = ridge * z.var(0).mean() * torch.eye(d, dtype=z.dtype)
    generator = torch.Generator().manual_seed(seed)
    means = z[torch.randperm(n, generator=generator)[:components]]
    covariances = (torch.cov(z.T, correction=0) + jitter).expand(components, d, d).clone()
    weights = torch.full((components,), 1.0 / components, dtype=z.dtype)
    for _ in range(steps if components > 1 else 1):
        # E step: responsibilities r[n, k] = p(component k | z_n)
        if components > 1:
            log_joint = torch.distributions.MultivariateNormal(means, covariance_matrix=covariances).log_prob(z[:, None, :])
            resp = torch.softmax(log_joint + weights.log(), dim=1)
        else:
            resp = torch.ones(n, 1, dtype=z.dtype)
        # M step: weighted maximum-likelihood weights, means, covariances
        mass = resp.sum(0) + 1e-12
        weights = mass / n
        means = resp.T @ z / mass[:, None]
        centred = z[None] - means[:, None]                                  # (K, N, d)
        covariances = torch.einsum("kn,kni,knj->kij", resp.T, centred, centred) / mass[:, None, None] + jitter
    return GaussianMixture(weights, means, covariances)


# --------------------------------------------------------------------------- linear probe
def standardize(train_features: torch.Tensor, test_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale every feature to mean 0 and std 1 using the *training* statistics only,
    (f − mean_train) / (std_train + 1e-6), for both sets: the test set must not leak into training."""
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    return (train_features - mean) / std, (test_features - mean) / std


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, weight_decay: float = 1e-2, max_iter: int = 200) -> float:
    """Test accuracy of a linear (softmax) classifier fitted to ``train_features``: the optimum of
    :func:`fit_softmax_regression`. Give it standardised features (:func:`standardize`)."""
    return float(linear_probes(train_features[None], train_labels[None], test_features, test_labels,
                               weight_decay=weight_decay, max_iter=max_iter)[0])


def linear_probes(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                  test_labels: torch.Tensor, weight_decay: float = 1e-2, max_iter: int = 200) -> torch.Tensor:
    """:func:`linear_probe` for R draws at once: features (R, n, f) with labels (R, n); test features (m, f)
    shared by all draws, or (R, m, f); test labels (m,). Returns the R test accuracies."""
    weight, bias = fit_softmax_regression(train_features, train_labels, weight_decay, max_iter,
                                          classes=int(max(train_labels.max(), test_labels.max())) + 1)
    with torch.no_grad():
        return ((torch.matmul(test_features, weight) + bias).argmax(2) == test_labels).float().mean(1)


def fit_softmax_regression(features: torch.Tensor, labels: torch.Tensor, weight_decay: float = 1e-2,
                           max_iter: int = 200, classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """R softmax regressions at once, each solved to convergence: for every r, the weights (f, C) and bias
    (1, C) that minimise  mean cross-entropy(features[r] W + b, labels[r]) + (weight_decay / 2) ‖W‖².

    With the penalty the problem is strictly convex in W, so it has one optimum whatever the starting point
    and however it is reached: the result depends on the features and labels only (a few hundred steps
    of plain gradient descent or Adam from a random start would still be drifting on raw pixels). The R
    problems are solved together by full-batch L-BFGS on the sum of their objectives, whose optimum is
    each one's optimum, since no two share a parameter."""
    if features.dim() != 3 or labels.shape != features.shape[:2]:
        raise ValueError(f"need features (R, n, f) and labels (R, n); got {tuple(features.shape)} and {tuple(labels.shape)}")
    runs, n, width = features.shape
    classes = classes or int(labels.max()) + 1
    weight = torch.zeros(runs, width, classes, requires_grad=True)
    bias = torch.zeros(runs, 1, classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.baddbmm(bias, features, weight)
        loss = (F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / n
                + 0.5 * weight_decay * weight.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(objective)
    return weight.detach(), bias.detach()


def paired_verdict(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str, scale: float = 100.0,
                   unit: str = " points", z: float = 3.0) -> str:
    """One sentence comparing two methods measured on the same draws (``a[i]`` and ``b[i]`` on draw i).

    It states a winner only when the mean paired difference is more than ``z`` standard errors
    (sd / √n) from zero, and always says in how many draws ``name_a`` was ahead and the mean ± sd of
    ``a − b`` (times ``scale``, e.g. accuracies in percentage points)."""
    if a.shape != b.shape or a.dim() != 1 or len(a) < 2:
        raise ValueError(f"need two equal-length 1-D series of at least 2 paired draws, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a - b).double() * scale
    mean, sd, n = float(diff.mean()), float(diff.std()), len(diff)
    ahead = int((diff > 0).sum())
    numbers = f"{name_a} ahead in {ahead} of {n} draws, mean difference {mean:+.1f} ± {sd:.1f}{unit} (± sd)"
    if abs(mean) > z * sd / math.sqrt(n):
        return f"{name_a} {'beat' if mean > 0 else 'lost to'} {name_b}: {numbers}"
    return f"no consistent difference between {name_a} and {name_b}: {numbers}"


def few_labels(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` randomly chosen examples of every class (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique():
        where = torch.nonzero(labels == c).flatten()
        chosen.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
    return torch.cat(chosen)


# --------------------------------------------------------------------------- recipe
def epoch_lr(options: dict, epoch: int) -> float:
    """Cosine decay from ``lr`` to ``lr * min_lr_ratio`` over the run's epochs."""
    lr, epochs, floor = options["lr"], max(options["epochs"], 1), options.get("min_lr_ratio", 0.05)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))


def fit_by_epochs(model: nn.Module, data, loss_fn, options: dict, snapshot=None) -> History:
    """Train with :func:`lecture13.training.train` one epoch at a time (cosine learning rate over
    ``epochs``, one Adam optimizer throughout), calling ``snapshot(model, epoch)`` after each epoch so
    a long run can be inspected or continued.

    Options beyond the usual: ``init`` (a checkpoint file to start from: a run in two stages),
    ``stop_after`` (stop after that many epochs, keeping the schedule of ``epochs``),
    ``time_budget_s`` (stop after the epoch in which the budget runs out) and ``precision``
    ("fp32" or "bf16", see :func:`lecture13.training.autocast`)."""
    import time

    if options.get("init"):
        from .checkpoints import load_checkpoint

        warm, warm_meta = load_checkpoint(options["init"])
        model.load_state_dict(warm.state_dict())
        print(f"starting from the weights in {options['init']} (their meta: {warm_meta.get('epoch', '?')} epochs)")
    optimizer = torch.optim.Adam(model.parameters(), lr=options["lr"])
    history, started = History(), time.perf_counter()
    for epoch in range(options["epochs"]):
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(options, epoch)
        run = train(model, data, loss_fn, optimizer=optimizer, epochs=1, device=options.get("device", "cpu"),
                    seed=options["seed"] if epoch == 0 else None, max_steps=options.get("max_steps"),
                    precision=options.get("precision", "fp32"), progress=options.get("progress", True), desc=f"epoch {epoch + 1}/{options['epochs']}")
        for row in run.steps:
            row["epoch"] = epoch
        for row in run.epochs:
            row["epoch"] = epoch
        history.extend(run)
        print(f"epoch {epoch + 1}: loss {run.epochs[-1]['loss']:.3f} ({history.seconds:.0f} s)", flush=True)
        if snapshot is not None:
            snapshot(model, epoch)
        if options.get("stop_after") is not None and epoch + 1 >= options["stop_after"]:
            print(f"stopping after epoch {epoch + 1} (stop_after)", flush=True)
            break
        budget = options.get("time_budget_s")
        if budget is not None and time.perf_counter() - started > budget:
            print(f"stopping after epoch {epoch + 1}: the time budget of {budget} s is spent", flush=True)
            break
    return history


def save_snapshot(name: str):
    """A ``snapshot`` callback that saves the model to runs/<name>.partial.pt after each epoch."""
    from pathlib import Path

    from .checkpoints import save_checkpoint

    def snapshot(model: nn.Module, epoch: int) -> None:
        save_checkpoint(model, Path("runs") / f"{name}.partial.pt", epoch=epoch + 1)

    return snapshot


def _fitter(name: str):
    """The recipe's ``fit``: L2 loss on [0, 1] images, by epochs, snapshots to runs/<name>.partial.pt."""
    def fit(model: Autoencoder, options: dict) -> History:
        data = loader("train", "unit", batch_size=options["batch_size"], seed=options["seed"], subset=options["subset"])
        return fit_by_epochs(model, data, autoencoder_loss, options, snapshot=save_snapshot(name))

    return fit


@torch.no_grad()
def _evaluate(model: Autoencoder, subset: str) -> dict[str, float]:
    x, _ = tensors("test", "unit", subset=subset)
    error = reconstruction_error(model, x).double()
    return {"l2_per_image": float(error.mean()), "mse_per_pixel": float(error.mean() / x[0].numel())}


def _decode_random(model: Autoencoder, n: int, seed: int) -> torch.Tensor:
    return model.decode(torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed)))


register_recipe(Recipe(
    name="autoencoder",
    description="convolutional autoencoder, 32-d code, L2 loss on [0, 1] Fashion-MNIST",
    build=lambda **kw: Autoencoder(**kw),
    fit=_fitter("autoencoder"),
    evaluate=_evaluate,
    sample=_decode_random,
    defaults={"epochs": 8, "lr": 2e-3, "batch_size": 128},
))

# The latent-size sweep of notebook 02: one small architecture (16 channels, 128 hidden units),
# one training budget (10 epochs of the full training set), only the code size d changes.
LATENT_SIZES = (2, 8, 32, 128)
SMALL_AUTOENCODER = {"channels": 16, "hidden": 128}
for _d in LATENT_SIZES:
    register_recipe(Recipe(
        name=f"autoencoder_d{_d}",
        description=f"small convolutional autoencoder, {_d}-d code (notebook 02's latent-size sweep)",
        build=lambda _d=_d, **kw: Autoencoder(**{"latent_dim": _d, **SMALL_AUTOENCODER, **kw}),
        fit=_fitter(f"autoencoder_d{_d}"),
        evaluate=_evaluate,
        sample=_decode_random,
        defaults={"epochs": 10, "lr": 2e-3, "batch_size": 128},
    ))
