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


# --------------------------------------------------------------------------- the linear probe
def _softmax_fit(features: torch.Tensor, labels: torch.Tensor, classes: int, weight_decay: float, *, bias: bool = True,
                 summed: bool = False, penalty: float = 0.5, penalise_bias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression solved tightly in float64 (L-BFGS), with switches for the usual mistakes."""
    a = features.double()
    weight = torch.zeros(a.shape[1], classes, dtype=torch.float64, requires_grad=True)
    offset = torch.zeros(classes, dtype=torch.float64, requires_grad=bias)
    params = [weight] + ([offset] if bias else [])
    opt = torch.optim.LBFGS(params, lr=1, max_iter=1000, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def objective():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ weight + offset, labels, reduction="sum" if summed else "mean")
        loss = loss + penalty * weight_decay * (weight.pow(2).sum() + (offset.pow(2).sum() if penalise_bias else 0.0))
        loss.backward()
        return loss

    opt.step(objective)
    return weight.detach(), offset.detach()


def _accuracy(fit: tuple[torch.Tensor, torch.Tensor], features: torch.Tensor, labels: torch.Tensor, pick=torch.argmax) -> float:
    weight, offset = fit
    return float((pick(features.double() @ weight + offset, dim=1) == labels).double().mean())


def _scale_mistakes(want: torch.Tensor, test_size: int) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """(hint, the accuracies that mistake reports) for the mistakes that need no refit."""
    return [
        ("a percentage: return the fraction of test images classified correctly, between 0 and 1", lambda: 100 * want),
        ("a count: return the fraction of the test images classified correctly, not their number",
         lambda: want * test_size),
        ("that is the error rate: return the fraction classified *correctly*", lambda: 1 - want),
    ]


def _probe_mistakes(a, ya, b, yb, weight_decay: float) -> list[tuple[str, str, Callable[[], float]]]:
    """(name, hint, the test accuracy that mistake reports) for one draw, computed only when needed."""
    classes = int(max(ya.max(), yb.max())) + 1
    fit = lambda x, y, **kw: _softmax_fit(x, y, classes, weight_decay, **kw)  # noqa: E731
    majority = int(torch.bincount(ya, minlength=classes).argmax())
    return [
        ("train", "that is the accuracy on the training features: the probe is judged on the test features",
         lambda: _accuracy(fit(a, ya), a, ya)),
        ("test fit", "that is what a classifier fitted on the test features scores: fit on the training features only, the test "
         "set may only be used to measure", lambda: _accuracy(fit(b, yb), b, yb)),
        ("both fit", "that is what a classifier fitted on the training and the test features together scores: fit on the "
         "training features only", lambda: _accuracy(fit(torch.cat([a, b]), torch.cat([ya, yb])), b, yb)),
        ("argmin", "the class with the *lowest* logit was predicted: predict the class with the highest (argmax)",
         lambda: _accuracy(fit(a, ya), b, yb, pick=torch.argmin)),
        ("no bias", "a classifier without a bias: its logits are f W + b, and these features are not centred",
         lambda: _accuracy(fit(a, ya, bias=False), b, yb)),
        ("no penalty", "the weight_decay argument was ignored (no penalty, or a fixed one)",
         lambda: _accuracy(_softmax_fit(a, ya, classes, 0.0), b, yb)),
        ("summed", "the cross-entropy was summed over the training images: average it, so that the penalty keeps its weight "
         "whatever their number", lambda: _accuracy(fit(a, ya, summed=True), b, yb)),
        ("not halved", "the penalty was weight_decay · ‖W‖²: the convention is (weight_decay / 2) · ‖W‖²",
         lambda: _accuracy(fit(a, ya, penalty=1.0), b, yb)),
        ("bias penalised", "the bias was penalised too: only the weights W are", lambda: _accuracy(fit(a, ya, penalise_bias=True), b, yb)),
        ("one class", "every test image was given the same class: is each label used as the target of its own image (as a class "
         "index, or one-hot)?", lambda: float((yb == majority).double().mean())),
    ]


def probe_inputs(hidden: bool = False) -> list[tuple]:
    """(label, train features (R, n, f), train labels (R, n), test features (m, f), test labels (m,), weight_decay,
    tolerance, the mistakes the case is built for, whose hints come first). Every case but the last hidden one is built so that each usual mistake reports a different accuracy,
    with the test points far from every boundary (any solver that converges gets the same accuracies)."""
    shift = 0.25 if hidden else 0.0
    g = torch.Generator().manual_seed(17 if hidden else 7)
    noise = lambda n: 0.1 * torch.randn(n, 1, generator=g)                                # noqa: E731
    line = lambda lo, hi, n: torch.linspace(lo, hi, n).unsqueeze(1)                        # noqa: E731
    labels = lambda *counts: torch.cat([torch.full((n,), c) for c, n in counts])          # noqa: E731
    with_noise = lambda x: torch.cat([x, noise(len(x))], 1)                                # noqa: E731

    # A: three classes along the diagonal, every feature positive: without a bias every class is a cone
    # through 0, and cones cannot separate points by their distance from 0.
    def ray(n):
        t = torch.cat([line(0.8 + c + shift, 1.2 + c + shift, n) for c in range(3)])
        return torch.cat([t, t], 1) + torch.cat([noise(3 * n), noise(3 * n)], 1)
    items = [("one draw (R = 1): 3 classes along a diagonal, all features positive (not centred)", ray(10)[None],
              labels((0, 10), (1, 10), (2, 10))[None], ray(8), labels((0, 8), (1, 8), (2, 8)), 1e-2, 1e-6, ("no bias", "argmin"))]

    # B: the training classes are split at 0; the test set has 10 images of class 0 at x in [0.3, 0.8], across
    # that boundary. Two training images are mislabelled, so the training accuracy is 40/42.
    train = torch.cat([line(-3, -1, 20), line(1, 3, 20), torch.tensor([[-2.0 - shift], [2.0 + shift]])])
    test = torch.cat([line(-3, -1, 20), line(1.5, 3, 20), line(0.3 + shift / 2, 0.8, 10)])
    items.append(("one draw: 2 classes split at 0; 10 test images of class 0 lie at x = 0.3 to 0.8, beyond the "
                  "training boundary", with_noise(train)[None], labels((0, 20), (1, 20), (1, 1), (0, 1))[None],
                  with_noise(test), labels((0, 20), (1, 20), (0, 10)), 1e-2, 1e-6, ("train", "test fit", "both fit")))

    # C: weight_decay=1 on 30 training images of class 0 around -1 and 10 of class 1 around +1: the penalty keeps the
    # weights small, so the bias, which favours the frequent class, moves the boundary to x ≈ 1.8 (without the
    # penalty, or with the cross-entropy summed or the bias penalised, it is below 0.5; with the penalty not
    # halved, above 3). In the three-draw case the class sizes are 30/10, 20/20 and 10/30: boundaries near 1.8, 0
    # and -1.8 (a penalty R times too strong moves them to ±4.6; one probe for all draws puts it near 0 for all).
    def sizes(n0, n1):
        return torch.cat([line(-2.2, 0.2, n0), line(0.0, 2.0, n1)])
    test_c = torch.cat([line(-2.0, -0.2, 10), line(0.7, 1.4, 10), line(2.3, 2.9, 10)])
    items.append(("one draw, weight_decay=1.0, 30 training images of class 0 and 10 of class 1: test images of class 1 "
                  "at x = 0.7-1.4 and 2.3-2.9", with_noise(sizes(30, 10))[None], labels((0, 30), (1, 10))[None],
                  with_noise(test_c), labels((0, 10), (1, 20)), 1.0, 1e-6,
                  ("no penalty", "summed", "not halved", "bias penalised")))
    draws = [(30, 10), (20, 20), (10, 30)]
    test_r = torch.cat([line(-4.0, -3.0, 5), line(-1.3, -0.5, 5), line(0.5, 1.3, 5), line(2.3, 3.0, 5), line(5.0, 5.5, 5)])
    items.append(("R = 3 draws at once, weight_decay=1.0, classes of 30/10, 20/20 and 10/30 training images",
                  torch.stack([with_noise(sizes(*n)) for n in draws]), torch.stack([labels((0, a), (1, b)) for a, b in draws]),
                  with_noise(test_r), labels((0, 10), (1, 15)), 1.0, 1e-6, ()))
    if hidden:
        x_train, y_train = data.tensors("train", "unit")
        x_test, y_test = data.tensors("test", "unit")
        picks = [autoencoders.few_labels(y_train, 10, seed=s) for s in (3, 4)]
        a, b = autoencoders.standardize(x_train[:, :, ::2, ::2].flatten(1), x_test[:, :, ::2, ::2].flatten(1))
        items.append(("R = 2 draws of 10 labelled Fashion-MNIST training images per class at 14x14 pixels, standardized; "
                      "the 2,000 test images", torch.stack([a[i] for i in picks]), torch.stack([y_train[i] for i in picks]),
                      b, y_test, 1e-2, 0.01, ()))
    return items


def _draw_mistakes(a, ya, b, yb, weight_decay: float, want: torch.Tensor) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """Mistakes of R probes at once: (hint, the accuracies that mistake reports)."""
    runs, n, _ = a.shape
    classes = int(max(ya.max(), yb.max())) + 1
    pooled = _accuracy(_softmax_fit(a.flatten(0, 1), ya.flatten(), classes, weight_decay), b, yb)
    return [
        ("every draw got the accuracy of one probe fitted to all the draws together: fit each draw's probe on that draw only",
         lambda: torch.full((runs,), pooled, dtype=torch.float64)),
        (f"the penalty is {runs} times too strong: the cross-entropy was averaged over all R·n images while every probe's "
         "penalty was added; each probe's objective is its own mean cross-entropy plus its own penalty",
         lambda: torch.tensor([_accuracy(_softmax_fit(a[r], ya[r], classes, runs * weight_decay), b, yb)
                               for r in range(runs)], dtype=torch.float64)),
        ("every draw got the accuracy of the first draw's probe", lambda: want[:1].expand(runs)),
    ]


def _linear_probe_property(label, a, ya, b, yb, weight_decay, tolerance, focus=()) -> Property:
    runs = len(a)
    call = (f"linear_probes(train_features (shape {tuple(a.shape)}), train_labels (shape {tuple(ya.shape)}), "
            f"test_features (shape {tuple(b.shape)}), test_labels, weight_decay={weight_decay})")

    def probe_on(fn):
        want = autoencoders.linear_probes(a, ya, b, yb, weight_decay=weight_decay).double()
        out = fn(a.clone(), ya.clone(), b.clone(), yb.clone(), weight_decay)
        if not isinstance(out, torch.Tensor):
            try:
                out = torch.as_tensor(out, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError):
                raise AssertionError(f"{label}: {call} should return a tensor of {runs} test accuracies, got "
                                     f"{type(out).__name__}") from None
        if out.numel() != runs:
            raise AssertionError(f"{label}: {call} returned {out.numel()} values (shape {tuple(out.shape)}), expected "
                                 f"one test accuracy per draw: shape ({runs},)")
        got = out.detach().flatten().double()
        if bool(((got - want).abs() <= tolerance).all()):
            return
        hints, mistakes = [], _scale_mistakes(want, len(yb))
        if len(b) <= 200:                                # on the real images, only the hints that need no refit
            if runs > 1:
                mistakes += _draw_mistakes(a, ya, b, yb, weight_decay, want)
            else:
                single = sorted(_probe_mistakes(a[0], ya[0], b, yb, weight_decay),
                                key=lambda m: focus.index(m[0]) if m[0] in focus else len(focus))
                mistakes += [(h, lambda f=f: torch.tensor([f()], dtype=torch.float64)) for _, h, f in single]
        for hint, wrong in mistakes:
            value = wrong()
            if bool(((value - want).abs() > tolerance).any()) and \
                    bool(((value - got).abs() <= max(tolerance, 1e-6) * (1 + value.abs())).all()):
                hints.append(hint)
        hints = hints[:3]
        hint = (f" — {hints[0]}" if len(hints) == 1 else
                " — that is what each of these usual mistakes gives: " + "; or ".join(hints) if hints else "")
        raise AssertionError(f"{label}: {call} returned {_fmt(got)}, expected the test accuracies {_fmt(want)} of "
                             f"softmax regression fitted to each draw's training features{hint}")

    probe_on.__name__ = f"probe_on({label})"
    return probe_on


def linear_probes_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``linear_probes(train_features, train_labels, test_features, test_labels, weight_decay)``."""
    return [_one_thread(_linear_probe_property(*item)) for item in probe_inputs(hidden)]
