"""Checks for notebook 02's exercises (autoencoders).

* :func:`train_step_checks`: ``train_step(model, optimizer, x)``, one optimiser step of an autoencoder on
  a batch: the loss it returns is the reconstruction loss *before* the step, the parameters move exactly
  as one step of gradient descent on :func:`lecture13.autoencoders.reconstruction_loss`, and over several
  steps no gradient of an earlier batch is carried into a later step (a missing ``zero_grad``);
* :func:`linear_autoencoder_checks`: ``linear_autoencoder(x, latent_dim)``, the best linear autoencoder by
  PCA: the mean of the images, orthonormal directions, and for every k ≤ latent_dim the first k directions
  reconstruct held-out images as well as the top-k principal directions do (the directions' signs are free,
  so no single output is right; an uncentred SVD and a reversed order are named).

Every check is a *property*: a callable that takes the student's function, runs it on a named input and
raises ``AssertionError`` with the input, what was expected, what came back and, when the answer matches a
usual mistake, a hint about that mistake. They work through the grader's channel: only tensors, numbers,
modules and optimizers cross (their in-place changes come back).
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from .. import autoencoders, data
from ..autoencoders import Autoencoder, reconstruction_loss

Property = Callable[[Callable], None]


def _fmt(values, digits: int = 4, limit: int = 6) -> str:
    flat = torch.as_tensor(values).detach().flatten().double().tolist()
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:limit]) + (", …" if len(flat) > limit else "") + "]"


# --------------------------------------------------------------------------- the training step
def _probe(seed: int, batch: int = 4) -> tuple[nn.Module, torch.Tensor]:
    """A small autoencoder (seeded, the global random state untouched) and a batch of images in [0, 1]."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Autoencoder(latent_dim=3, channels=2, hidden=16)
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed + 1))
    return model, x


def _one_thread(prop: Property) -> Property:
    """Run a property on one thread: the probes are tiny, and on a busy CPU two threads make each of their
    steps many times slower (the student's function, called from the notebook, runs inside it too)."""
    def run(fn):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            prop(fn)
        finally:
            torch.set_num_threads(threads)

    run.__name__ = prop.__name__
    return run


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


def _reference_steps(model: nn.Module, batches: list[torch.Tensor], lr: float) -> tuple[list[float], torch.Tensor]:
    """The losses before each step and the parameters after the steps, from a copy of ``model``."""
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(twin.parameters(), lr=lr)
    losses = [autoencoders.train_step(twin, opt, x) for x in batches]
    return losses, _flat(twin)


def _as_float(out, call: str) -> float:
    try:
        value = float(out)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"{call} should return the loss as a number (float(loss)), got "
                             f"{type(out).__name__}") from None
    return value


def train_step_checks(hidden: bool = False, lr: float = 0.01) -> list[Property]:
    """Properties of ``train_step(model, optimizer, x)`` (for :func:`lecture13.exercises.check`); plain SGD
    with learning rate ``lr``, so that one step is exactly ``θ − lr · ∇L``."""
    seed = 40 if hidden else 0
    call = f"train_step(model (a small Autoencoder), torch.optim.SGD(model.parameters(), lr={lr}), x (shape (4, 1, 28, 28)))"

    def returns_the_loss_before_the_step(fn):
        model, x = _probe(seed)
        with torch.no_grad():
            before = float(reconstruction_loss(model(x), x))
        (want,), _ = _reference_steps(model, [x], lr)
        got = _as_float(fn(model, torch.optim.SGD(model.parameters(), lr=lr), x), call)
        if math.isclose(got, before, rel_tol=1e-4, abs_tol=1e-4):
            return
        with torch.no_grad():
            after = float(reconstruction_loss(model(x), x))     # the model as the answer left it
        mse = before / x[0].numel()                               # F.mse_loss of the same batch
        hint = ""
        if math.isclose(got, after, rel_tol=1e-5) and not math.isclose(after, before, rel_tol=1e-5):
            hint = " — that is the loss *after* the step: return the loss you called backward() on"
        elif math.isclose(got, mse, rel_tol=1e-3):
            hint = " — that is the mean over the pixels too (F.mse_loss): sum over each image's pixels, mean over the batch"
        elif math.isclose(got, before * len(x), rel_tol=1e-3):
            hint = " — that is the sum over the batch: take the mean over the images"
        raise AssertionError(f"{call} returned the loss {got:.5f}, expected the reconstruction loss of the batch before "
                             f"the step, {want:.5f}{hint}")

    def one_gradient_step_on_the_reconstruction_loss(fn):
        model, x = _probe(seed + 1)
        start = _flat(model)
        _, want = _reference_steps(model, [x], lr)
        fn(model, torch.optim.SGD(model.parameters(), lr=lr), x)
        moved, expected = _flat(model) - start, want - start
        if torch.allclose(moved, expected, rtol=1e-3, atol=1e-7 + 1e-3 * float(expected.abs().max())):
            return
        size, want_size = float(moved.norm()), float(expected.norm())
        hint = ""
        if size == 0:
            hint = (" — the parameters did not change: call optimizer.step() after loss.backward() (and clear the "
                    "gradients before backward, not between backward and step)")
        elif math.isclose(size * x[0].numel(), want_size, rel_tol=0.02):
            hint = " — a step 784 times too small: the loss averages over the pixels (F.mse_loss); sum over them"
        elif math.isclose(size, want_size * len(x), rel_tol=0.02):
            hint = f" — a step {len(x)} times too large: the loss sums over the batch; take the mean over the images"
        elif float(torch.nn.functional.cosine_similarity(moved, expected, dim=0)) < 0:
            hint = " — the parameters moved uphill: minimise the loss (no minus sign in front of it)"
        raise AssertionError(
            f"after {call} the parameters moved by {size:.4g} (norm of the change), expected one step of gradient descent "
            f"on reconstruction_loss(model(x), x), a change of norm {want_size:.4g}{hint}")

    def no_gradient_carried_over(fn, steps: int = 3):
        model, _ = _probe(seed + 2)
        batches = [_probe(seed + 10 + i)[1] for i in range(steps)]
        start = _flat(model)
        losses, want = _reference_steps(model, batches, lr)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        got = [_as_float(fn(model, opt, x), call) for x in batches]
        moved, expected = _flat(model) - start, want - start
        if torch.allclose(moved, expected, rtol=1e-3, atol=1e-7 + 1e-3 * float(expected.abs().max())):
            return
        raise AssertionError(
            f"{steps} calls of {call} on {steps} batches in a row moved the parameters by {float(moved.norm()):.4g}, expected "
            f"{float(expected.norm()):.4g} ({steps} steps of gradient descent, losses {_fmt(losses)}; yours returned "
            f"{_fmt(got)}) — the gradients of the earlier batches are still in .grad: backward() adds to them, so call "
            "optimizer.zero_grad() before loss.backward() in every step")

    return [_one_thread(p) for p in (returns_the_loss_before_the_step, one_gradient_step_on_the_reconstruction_loss,
                                     no_gradient_carried_over)]


# --------------------------------------------------------------------------- PCA: the best linear autoencoder
def pca_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    """(label, x, held-out x, latent_dim). The synthetic images have a large mean and a few directions of
    clearly different variance, so forgetting to centre or reversing the order changes the error a lot."""
    g = torch.Generator().manual_seed(9 if hidden else 1)
    pixels = 36
    directions = torch.linalg.qr(torch.randn(pixels, 5, generator=g, dtype=torch.float64))[0]
    scales = torch.tensor([3.0, 2.0, 1.4, 1.0, 0.6], dtype=torch.float64) * 0.1
    mean = 0.3 + 0.4 * torch.rand(pixels, generator=g, dtype=torch.float64)

    def draw(n: int) -> torch.Tensor:
        codes = torch.randn(n, 5, generator=g, dtype=torch.float64) * scales
        x = mean + codes @ directions.T + 0.01 * torch.randn(n, pixels, generator=g, dtype=torch.float64)
        return x.float().reshape(n, 1, 6, 6)

    items = [("300 synthetic 6x6 images, latent_dim=3", draw(300), draw(200), 3)]
    if hidden:
        x, _ = data.tensors("test", "unit")
        x = x[:, :, ::2, ::2]                                   # half resolution: 196 pixels, a quick SVD
        items.append(("1,000 Fashion-MNIST test images at 14x14, latent_dim=8", x[:1000], x[1000:1500], 8))
    else:
        items.append(("the same images, latent_dim=5", items[0][1], items[0][2], 5))
    return items


def _error(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> float:
    return float(autoencoders.linear_reconstruction_error(x, mean.double(), basis.double()).mean())


def _pca_property(label: str, x: torch.Tensor, held_out: torch.Tensor, d: int) -> Property:
    call = f"linear_autoencoder(x (shape {tuple(x.shape)}), latent_dim={d})"
    pixels = x[0].numel()

    def pca_on(fn):
        out = fn(x.clone(), d)
        assert isinstance(out, (tuple, list)) and len(out) == 2, (
            f"{label}: {call} should return a pair (mean, basis), got {type(out).__name__}")
        mean, basis = out
        assert isinstance(mean, torch.Tensor) and isinstance(basis, torch.Tensor), (
            f"{label}: {call} should return two tensors, got {type(mean).__name__} and {type(basis).__name__}")
        assert tuple(mean.shape) == (pixels,), (
            f"{label}: the mean has shape {tuple(mean.shape)}, expected ({pixels},): one value per pixel of the flattened images")
        hint = " — the directions are rows: return them as columns (the transpose)" if tuple(basis.shape) == (d, pixels) else ""
        assert tuple(basis.shape) == (pixels, d), (
            f"{label}: the basis has shape {tuple(basis.shape)}, expected ({pixels}, {d}): one column per direction{hint}")
        assert mean.is_floating_point() and basis.is_floating_point(), "return floating-point tensors"
        true_mean = x.flatten(1).double().mean(0)
        if not torch.allclose(mean.double(), true_mean, atol=1e-4):
            hint = (" — the decoder adds the mean back (x̂ = V z + m): return the per-pixel mean of the images"
                    if float(mean.abs().max()) < 1e-6 else "")
            raise AssertionError(f"{label}: {call} returned the mean {_fmt(mean)}, expected the mean image "
                                 f"{_fmt(true_mean)}{hint}")
        gram = basis.double().T @ basis.double()
        if not torch.allclose(gram, torch.eye(d, dtype=torch.float64), atol=1e-4):
            norms = gram.diagonal().sqrt()
            hint = (" — the columns are not of length 1: return the directions themselves, not scaled by the singular values"
                    if not torch.allclose(norms, torch.ones(d, dtype=torch.float64), atol=1e-3) else
                    " — the columns are of length 1 but not perpendicular: take the right singular vectors (or the "
                    "eigenvectors of the covariance), not the columns of U or of the data")
            raise AssertionError(f"{label}: the columns of the basis should be orthonormal (Vᵀ V = I); the column lengths are "
                                 f"{_fmt(norms)} and the largest off-diagonal |Vᵀ V| is "
                                 f"{float((gram - torch.diag(gram.diagonal())).abs().max()):.3g}{hint}")
        ref_mean, ref_basis = autoencoders.linear_autoencoder(x, d)
        for k in range(1, d + 1):
            want = _error(held_out, ref_mean, ref_basis[:, :k])
            got = _error(held_out, true_mean, basis[:, :k])
            if math.isclose(got, want, rel_tol=2e-3, abs_tol=1e-6):
                continue
            flat = x.flatten(1).double()
            uncentred = torch.linalg.svd(flat, full_matrices=False)[2][:k].T
            right = torch.linalg.svd(flat - true_mean, full_matrices=False)[2]
            smallest = right.flip(0)[:k].T
            hint = ""
            if math.isclose(got, _error(held_out, true_mean, uncentred), rel_tol=1e-3):
                hint = (" — these are the directions of the *uncentred* images: subtract the mean before the SVD, or the "
                        "first direction just points at the mean image")
            elif math.isclose(got, _error(held_out, true_mean, right[:, :k]), rel_tol=1e-3):
                hint = (" — these are the columns of Vh (U, S, Vh = torch.linalg.svd(...)): the directions are its *rows*, "
                        "so the basis is Vh[:latent_dim].T")
            elif math.isclose(got, _error(held_out, true_mean, smallest), rel_tol=1e-3) or got > want * 1.5:
                hint = (" — the first columns must be the directions of largest variance (torch.linalg.eigh sorts its "
                        "eigenvalues in ascending order; torch.linalg.svd in descending order)")
            raise AssertionError(
                f"{label}: with the first k={k} columns of your basis the held-out images ({len(held_out)}) are reconstructed "
                f"with an L2 error of {got:.5f} per image, expected {want:.5f} (the top-{k} principal directions){hint}")

    pca_on.__name__ = f"pca_on({label})"
    return pca_on


def linear_autoencoder_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``linear_autoencoder(x, latent_dim)`` (for :func:`lecture13.exercises.check`)."""
    return [_pca_property(*item) for item in pca_inputs(hidden)]
