"""Checks for notebook 00's exercises (the factorized model: every pixel an independent coin).

* :func:`sampling_checks`: ``sample_factorized(theta, n, seed)`` draws ``n`` binary images: the
  shape (n, *theta.shape), float 0/1 values, each pixel on in the fraction θ_i of many samples (within
  a stated number of standard errors), and the same seed giving the same images;
* :func:`choose_alpha_checks`: ``choose_alpha(x_train, x_val, alphas)`` returns the α whose fit on
  the training images gives the lowest mean NLL on the *validation* images, and those NLLs, on data
  where the answer is known (few training images: a moderate α wins; the training NLL always
  prefers the smallest α, so choosing by it is caught).

Every check is a *property*: a callable that takes the student's function, runs it on a named input
and raises ``AssertionError`` with the input, what was expected, what came back and, when the answer
matches a usual mistake, a hint about that mistake. Only tensors, numbers and lists cross the grader's
channel, so the random generator is built by the answer from a seed.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import factorized

Property = Callable[[Callable], None]


def _fmt(values, digits: int = 4, limit: int = 8) -> str:
    flat = torch.as_tensor(values).detach().flatten().double().tolist()
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:limit]) + (", …" if len(flat) > limit else "") + "]"


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol))


# --------------------------------------------------------------------------- sampling
def sampling_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, int, int]]:
    """(label, theta, n, seed): θ with pixels far from 1/2 (so that on-with-probability 1 − θ shows)."""
    if not hidden:
        return [("theta of 4 pixels, 20,000 samples", torch.tensor([0.05, 0.3, 0.5, 0.9]), 20_000, 0),
                ("an image-shaped theta (1, 2, 3)", torch.tensor([[[0.1, 0.8, 0.6], [0.95, 0.25, 0.4]]]), 20_000, 1)]
    g = torch.Generator().manual_seed(2024)
    return [("a random 4x4 theta", torch.rand(1, 4, 4, generator=g) * 0.9 + 0.05, 20_000, 7),
            ("theta (2, 5), few samples", torch.rand(2, 5, generator=g) * 0.8 + 0.1, 30_000, 123)]


def _samples_property(label: str, theta: torch.Tensor, n: int, seed: int, se: float = 5.0) -> Property:
    call = f"sample_factorized(theta={_fmt(theta)} (shape {tuple(theta.shape)}), n={n}, seed={seed})"

    def samples_on(fn):
        x = fn(theta.clone(), n, seed)
        assert isinstance(x, torch.Tensor), f"{label}: {call} should return a tensor, got {type(x).__name__}"
        want = (n, *theta.shape)
        hint = (" — that is one image: draw n of them, e.g. from theta.expand(n, *theta.shape)"
                if tuple(x.shape) == tuple(theta.shape) else "")
        assert tuple(x.shape) == want, f"{label}: {call} returned shape {tuple(x.shape)}, expected {want}{hint}"
        assert x.is_floating_point(), (f"{label}: {call} returned dtype {x.dtype}, expected a float tensor of 0.0 and "
                                       "1.0 like the binarized images (use .float())")
        values = sorted(set(x.unique().tolist()))
        assert set(values) <= {0.0, 1.0}, (
            f"{label}: {call} returned values other than 0 and 1 ({_fmt(values)}): a sample is a binary image, "
            "theta_i is the probability that pixel i is 1, not its value")
        means = x.double().mean(0)
        t = theta.double()
        tolerance = se * (t * (1 - t) / n).sqrt() + 1e-3
        if bool(((means - t).abs() <= tolerance).all()):
            return
        worst = int(((means - t).abs() / tolerance).flatten().argmax())
        hint = ""
        if bool((means == (t > 0.5).double()).all()):
            hint = " — that is theta thresholded at 0.5, the most likely image, not a sample"
        elif n > 1 and bool((x == x[:1]).all()):
            hint = " — every sample is the same image: draw fresh randomness for each of the n images"
        elif bool(((means - (1 - t)).abs() <= tolerance).all()):
            hint = " — each pixel is on in a fraction 1 − theta: a pixel is 1 when its uniform draw is *below* theta"
        raise AssertionError(
            f"{label}: in {n:,} samples from {call} pixel {worst} is on in a fraction {means.flatten()[worst]:.4f} of "
            f"them, expected theta = {t.flatten()[worst]:.4f} (within {tolerance.flatten()[worst]:.4f}, {se:g} standard "
            f"errors); pixel means {_fmt(means)}, theta {_fmt(t)}{hint}")

    samples_on.__name__ = f"samples_on({label})"
    return samples_on


def _same_seed_property(theta: torch.Tensor, n: int = 50, seed: int = 3) -> Property:
    def same_seed_same_samples(fn):
        a, b, c = fn(theta.clone(), n, seed), fn(theta.clone(), n, seed), fn(theta.clone(), n, seed + 1)
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and isinstance(c, torch.Tensor), \
            "sample_factorized should return a tensor"
        assert a.shape == b.shape and torch.equal(a, b), (
            f"sample_factorized(theta, n={n}, seed={seed}) twice gave different images: build the generator from the "
            "seed, torch.Generator().manual_seed(seed), and pass it to the random call (generator=...)")
        assert not torch.equal(a, c), (
            f"seeds {seed} and {seed + 1} gave identical images: the seed must decide the randomness")

    return same_seed_same_samples


def sampling_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``sample_factorized(theta, n, seed)`` (for :func:`lecture13.exercises.check`)."""
    props = [_samples_property(*item) for item in sampling_inputs(hidden)]
    theta = sampling_inputs(hidden)[0][1]
    return props + [_same_seed_property(theta, seed=11 if hidden else 3)]


# --------------------------------------------------------------------------- choosing alpha
ALPHAS = [0.01, 0.1, 0.5, 2.0, 8.0]


def choose_alpha_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor, list[float]]]:
    """(label, x_train, x_val, alphas): first few training images (a moderate α wins on validation,
    the smallest on training), then many (little smoothing is best)."""
    g = torch.Generator().manual_seed(5 if hidden else 0)
    theta = torch.tensor([0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97] * 2)
    if hidden:
        theta = theta.roll(3).reshape(1, 4, 4)

    def draw(n: int) -> torch.Tensor:
        return torch.bernoulli(theta.expand(n, *theta.shape), generator=g)

    return [("6 training images, 400 validation images", draw(6), draw(400), list(ALPHAS)),
            ("500 training images, 400 validation images", draw(500), draw(400), list(ALPHAS[::-1] if hidden else ALPHAS))]


def _choose_alpha_property(label: str, x_train: torch.Tensor, x_val: torch.Tensor, alphas: list[float]) -> Property:
    call = (f"choose_alpha(x_train (shape {tuple(x_train.shape)}), x_val (shape {tuple(x_val.shape)}), "
            f"alphas={alphas})")

    def choose_alpha_on(fn):
        best, nlls = factorized.choose_alpha(x_train, x_val, alphas)
        out = fn(x_train.clone(), x_val.clone(), list(alphas))
        assert isinstance(out, (tuple, list)) and len(out) == 2, (
            f"{label}: {call} should return a pair (best alpha, the validation NLLs), got {type(out).__name__}")
        got_best, got_nlls = out
        try:
            got = torch.tensor([float(v) for v in (got_nlls.flatten() if isinstance(got_nlls, torch.Tensor) else got_nlls)])
        except (TypeError, ValueError):
            raise AssertionError(f"{label}: the second item should be the {len(alphas)} validation NLLs, one per alpha, "
                                 f"got {type(got_nlls).__name__}") from None
        if not _close(got, nlls):
            per_alpha = lambda fit_on, score: torch.stack(  # noqa: E731
                [factorized.bernoulli_nll(factorized.fit_bernoulli(fit_on, a), score).mean() for a in alphas])
            mistakes = [
                (per_alpha(x_train, x_train), "those are the NLLs of the training images: score x_val, the images the fit never saw"),
                (per_alpha(x_val, x_val), "theta was fitted on the validation images: fit on x_train, score x_val"),
                (nlls * len(x_val), "that is the sum over the validation images: report the mean NLL per image"),
                (nlls / x_val[0].numel(), "that is per pixel: sum over the pixels of an image, then the mean over the images"),
            ]
            hint = next((" — " + text for value, text in mistakes if _close(got, value)), "")
            raise AssertionError(f"{label}: {call} returned the NLLs {_fmt(got)}, expected the mean validation NLLs "
                                 f"(nats per image) {_fmt(nlls)}{hint}")
        try:
            got_best = float(got_best)
        except (TypeError, ValueError):
            raise AssertionError(f"{label}: the first item should be the chosen alpha, a number; got "
                                 f"{type(got_best).__name__}") from None
        if not math.isclose(got_best, best, rel_tol=1e-6):
            train_nlls = torch.stack([factorized.bernoulli_nll(factorized.fit_bernoulli(x_train, a), x_train).mean()
                                      for a in alphas])
            hint = ""
            if got_best == int(nlls.argmin()):
                hint = " — that is its index in alphas: return the value alphas[i]"
            elif math.isclose(got_best, alphas[int(nlls.argmax())]):
                hint = " — that alpha has the *highest* validation NLL: pick the lowest"
            elif math.isclose(got_best, alphas[int(train_nlls.argmin())]):
                hint = " — that alpha has the lowest *training* NLL (the least smoothing always does): choose by validation"
            raise AssertionError(f"{label}: {call} chose alpha = {got_best:g}, expected {best:g}, the alpha with the lowest "
                                 f"validation NLL {_fmt(nlls)}{hint}")

    choose_alpha_on.__name__ = f"choose_alpha_on({label})"
    return choose_alpha_on


def choose_alpha_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``choose_alpha(x_train, x_val, alphas)`` (for :func:`lecture13.exercises.check`)."""
    return [_choose_alpha_property(*item) for item in choose_alpha_inputs(hidden)]
