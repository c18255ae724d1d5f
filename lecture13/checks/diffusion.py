"""Checks for the diffusion exercises (notebook 07): the three pieces of a DDPM (Ho, Jain and Abbeel 2020).

* :func:`q_sample_checks`: ``q_sample(x0, t, noise, alpha_bars)``, x_t from q(x_t | x_0) in one step
  (eq. 4), on real test images at several noise levels, then in the lecture's terms: the empirical mean
  and variance of their x_t over many noise draws against the closed form √ᾱ_t x_0, 1 − ᾱ_t.
* :func:`ddpm_loss_checks`: ``ddpm_loss(eps_model, x0, t, noise, alpha_bars)``, L_simple (eq. 14) for given
  steps and noise, on the shipped DDPM's network, then per noise level against the reference and against
  a network that predicts no noise at all.
* :func:`reverse_step_checks`: ``reverse_step(eps_model, x_t, t, z, alpha_bars, sigmas)``, one ancestral
  step x_t → x_{t−1} (Algorithm 2, with x̂_0 clipped to the data's range as the course's sampler does), at
  several steps, then used for all T steps to sample images from the shipped DDPM, compared with the
  reference's images from the same noise.

The references with the exercises' signatures are here (:func:`q_sample`, :func:`ddpm_loss`,
:func:`reverse_step`); each is the model module's own computation (:func:`lecture13.diffusion.q_sample`,
:func:`lecture13.diffusion.ddpm_loss`, :meth:`lecture13.diffusion.DDPM.reverse_step`) with the step,
noise and schedule passed in as tensors, so that only tensors and modules cross to the answer (the
grader's channel) — ``tests/test_notebook07_claims.py`` checks that they agree with the module's.

Every check is a *property*: it raises ``AssertionError`` naming the input, what was expected, what came
back and, when the answer matches a usual mistake, a hint about it.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import torch
import torch.nn.functional as F

from .. import diffusion
from ..exercises import GRADING_ENV
from .common import close, matching_hint
from .gans import _fmt

Property = Callable[[Callable], None]
MODEL = "ddpm"          # the shipped model the pieces are put into


# --------------------------------------------------------------------------- the references
class _Bars:
    """A schedule that knows only ᾱ_1 … ᾱ_T: what :func:`lecture13.diffusion.q_sample` reads."""

    at = diffusion.Schedule.at

    def __init__(self, alpha_bars: torch.Tensor):
        self.alpha_bars = alpha_bars


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bars: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for each example's own step t (1 … T; ᾱ_t = ``alpha_bars[t − 1]``)."""
    return diffusion.q_sample(_Bars(alpha_bars), x0, t, noise).to(x0.dtype)


def ddpm_loss(eps_model: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              alpha_bars: torch.Tensor) -> torch.Tensor:
    """L_simple for given steps and noise: the mean over the batch and every coordinate of
    (ε − ε_θ(x_t, t))², x_t from q(x_t | x_0) (:func:`lecture13.diffusion.ddpm_loss` draws t and ε itself)."""
    return F.mse_loss(eps_model(q_sample(x0, t, noise, alpha_bars), t), noise)


def reverse_step(eps_model: torch.nn.Module, x_t: torch.Tensor, t: int, z: torch.Tensor,
                 alpha_bars: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z (no noise at t = 1), x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t clipped to
    [−1, 1]: :meth:`lecture13.diffusion.DDPM.reverse_step` with the schedule given by ᾱ (and σ)."""
    a = alpha_bars.double()
    a_t, a_prev = a[t - 1], (a[t - 2] if t > 1 else torch.ones((), dtype=torch.float64))
    beta = 1 - a_t / a_prev
    steps = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    eps = eps_model(x_t, steps)
    x0 = ((x_t - float((1 - a_t).sqrt()) * eps) / float(a_t.sqrt())).clamp(-1, 1)
    mean = float(a_prev.sqrt() * beta / (1 - a_t)) * x0 + float((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)) * x_t
    return mean if t == 1 else mean + float(sigmas[t - 1]) * z


# --------------------------------------------------------------------------- the shipped model and inputs
_CACHE: dict = {}


def trained_model() -> diffusion.DDPM:
    """The shipped DDPM (checked by sha256), loaded once."""
    if "model" not in _CACHE:
        from ..checkpoints import pretrained

        _CACHE["model"] = pretrained(MODEL).eval()
    return _CACHE["model"]


def schedule_tensors(model: diffusion.DDPM | None = None) -> dict[str, torch.Tensor]:
    """What the exercises are given: ``alpha_bars`` ᾱ_1 … ᾱ_T (float32, as the model uses them, and float64
    for the reverse step's small differences) and ``sigmas`` σ_1 … σ_T of the reverse steps."""
    s = (model or trained_model()).schedule
    return {"alpha_bars": s.alpha_bars.float(), "alpha_bars64": s.alpha_bars.clone(), "sigmas": s.sigma2.sqrt()}


def test_images(n: int, start: int = 0) -> torch.Tensor:
    """``n`` grayscale test images in [−1, 1] (the model's range), every 200th of the embedded 2,000 from
    ``start`` (so the classes differ)."""
    if "test" not in _CACHE:
        from ..data import tensors

        _CACHE["test"] = tensors("test", "signed", subset="embedded")[0]
    test = _CACHE["test"]
    return test[start::200][:n].clone()


def _noise(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 1e-4) -> bool:
    return close(a, b, atol, rtol, equal_nan=False)   # in these checks a NaN never counts as a match


def _hint(got: torch.Tensor, mistakes, atol: float) -> str:
    return matching_hint(got, mistakes, atol=atol, equal_nan=False)


def _compare(call: str, expected: torch.Tensor, got, mistakes, what: str, atol: float = 1e-5) -> None:
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{call} should return a tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"{call}: {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
                             + _hint(got, mistakes, atol))
    if not got.is_floating_point():
        raise AssertionError(f"{call}: {what} has dtype {got.dtype}, expected a floating-point tensor")
    if bool(torch.isnan(got).any()):
        raise AssertionError(f"{call}: {what} contains NaN (expected {_fmt(expected)}, got {_fmt(got)})")
    if not _close(got, expected, atol):
        diff = (got.detach().double() - expected.double()).abs()
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.dim() else ()
        at = f" at index {where}" if where else ""
        raise AssertionError(f"{call}: wrong {what}{at} (off by up to {float(diff.max()):.3g}): expected "
                             f"{_fmt(expected)}, got {_fmt(got)}" + _hint(got, mistakes, atol))
    if got.dtype != expected.dtype:
        raise AssertionError(f"{call}: {what} has dtype {got.dtype}, expected {expected.dtype} (the input's): "
                             f"the network's weights are float32, so keep the images' dtype")


def _steps_text(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(int(v)) for v in t.tolist()) + "]"


# --------------------------------------------------------------------------- exercise 3: q_sample
def q_sample_mistakes(x0, t, noise, alpha_bars) -> list[tuple[Callable, str]]:
    shape = (-1,) + (1,) * (x0.dim() - 1)
    a = alpha_bars[t - 1].view(shape)
    a_next = alpha_bars[(t).clamp(max=len(alpha_bars) - 1)].view(shape)
    a_first = alpha_bars[t[0] - 1]
    return [
        (lambda: a * x0 + (1 - a) * noise,
         "the coefficients are not square roots: ᾱ_t and 1 − ᾱ_t are the factors of the *variances*; x_0 and ε are "
         "scaled by their square roots"),
        (lambda: a.sqrt() * x0 + (1 - a) * noise,
         "the noise is scaled by the variance 1 − ᾱ_t, not by the standard deviation"),
        (lambda: a * x0 + (1 - a).sqrt() * noise, "x_0 is scaled by ᾱ_t, not by its square root"),
        (lambda: (1 - a).sqrt() * x0 + a.sqrt() * noise,
         "the two coefficients are swapped: at small t (ᾱ_t ≈ 1) x_t must be almost x_0"),
        (lambda: a.sqrt() * x0 + noise, "the noise is not scaled: the variance of x_t must be 1 − ᾱ_t"),
        (lambda: a_next.sqrt() * x0 + (1 - a_next).sqrt() * noise,
         "off by one step: the steps count from 1, and ᾱ_t is alpha_bars[t − 1]"),
        (lambda: a_first.sqrt() * x0 + (1 - a_first).sqrt() * noise,
         "every example got the first example's step: each has its own t[i]"),
    ]


def _q_inputs(label: str, n: int, seed: int, steps: list[int], points: bool = False):
    if points:
        x0 = 2 * _noise((n, 2), seed)
    else:
        x0 = test_images(n, seed % 200)
    return x0, torch.tensor(steps, dtype=torch.long), _noise(x0.shape, seed + 1)


Q_VISIBLE = [("4 test images at steps 1, 50, 150 and 200", 4, 0, [1, 50, 150, 200], False)]


def q_sample_hidden() -> list[tuple]:
    return [("6 other test images at steps 200, 2, 100, 100, 7 and 199", 6, 31, [200, 2, 100, 100, 7, 199], False),
            ("5 two-dimensional points (any shape (N, …)) at steps 3, 60, 120, 180, 200", 5, 9, [3, 60, 120, 180, 200], True)]


def _q_property(label, n, seed, steps, points) -> Property:
    def q_sample_on(fn):
        alpha_bars = schedule_tensors()["alpha_bars"]
        x0, t, noise = _q_inputs(label, n, seed, steps, points)
        got = fn(x0.clone(), t.clone(), noise.clone(), alpha_bars.clone())
        want = q_sample(x0, t, noise, alpha_bars)
        call = f"q_sample(x0, t = {_steps_text(t)}, noise, alpha_bars) [{label}]"
        _compare(call, want, got, q_sample_mistakes(x0, t, noise, alpha_bars), "x_t")

    q_sample_on.__name__ = f"q_sample on {label}"
    return q_sample_on


def q_sample_statistics(t_step: int = 60, draws: int = 2000) -> Property:
    """In the lecture's terms: their x_t of one test image over ``draws`` noise draws has, pixel by pixel,
    the mean √ᾱ_t x_0 and the variance 1 − ᾱ_t of the closed form (within the sampling error)."""

    def q_sample_distribution(fn):
        alpha_bars = schedule_tensors()["alpha_bars"]
        x0 = test_images(1, 3).expand(draws, -1, -1, -1).contiguous()
        t = torch.full((draws,), t_step, dtype=torch.long)
        got = fn(x0.clone(), t, _noise(x0.shape, 77), alpha_bars.clone())
        if not isinstance(got, torch.Tensor) or got.shape != x0.shape:
            raise AssertionError(f"q_sample on {draws} copies of a test image: expected shape {tuple(x0.shape)}")
        a = float(alpha_bars[t_step - 1])
        mean, var = got.double().mean(0), got.double().var(0)
        z = ((mean - math.sqrt(a) * x0[0].double()) / math.sqrt((1 - a) / draws)).abs().max()
        ratio = float(var.mean() / (1 - a))
        assert float(z) < 5 and abs(ratio - 1) < 0.05, (
            f"your q_sample on {draws} noise draws of one test image at t = {t_step} (ᾱ_t = {a:.4f}): the pixels' "
            f"mean is up to {float(z):.1f} standard errors from √ᾱ_t x_0 (expected < 5) and their variance is on "
            f"average {ratio:.3f} × (1 − ᾱ_t) (expected 1 ± 0.05): these are not draws from q(x_t | x_0) = "
            f"N(√ᾱ_t x_0, (1 − ᾱ_t) I)")

    return q_sample_distribution


def q_sample_checks(inputs=None, statistics: bool = True) -> list[Property]:
    props = [_q_property(*item) for item in (Q_VISIBLE if inputs is None else inputs)]
    return props + ([q_sample_statistics()] if statistics else [])


# --------------------------------------------------------------------------- exercise 4: the loss
def loss_mistakes(net, x0, t, noise, alpha_bars) -> list[tuple[Callable, str]]:
    x_t = q_sample(x0, t, noise, alpha_bars)
    shape = (-1,) + (1,) * (x0.dim() - 1)
    a = alpha_bars[t - 1].view(shape)
    return [
        (lambda: F.mse_loss(net(x_t, t), x0), "the network predicts the noise ε, not the clean image x_0"),
        (lambda: F.mse_loss(net(x0, t), noise), "the network must be given the noisy x_t, not x_0"),
        (lambda: F.mse_loss(net(noise, t), noise), "the network must be given the noisy x_t, not the noise itself"),
        (lambda: F.mse_loss(net(x_t, t), x_t), "compare the prediction with the noise ε that was added"),
        (lambda: ((net(x_t, t) - noise) ** 2).sum(), "a sum: the loss is the mean over the batch and the pixels"),
        (lambda: ((net(x_t, t) - noise) ** 2).flatten(1).sum(1).mean(),
         "summed over the pixels: the convention here is the mean over the pixels too (F.mse_loss's)"),
        (lambda: (net(x_t, t) - noise).abs().mean(), "an absolute error: L_simple is a squared error"),
        (lambda: F.mse_loss(net(x_t, t - 1), noise), "the network is told the step t itself (1 … T), not t − 1"),
        (lambda: F.mse_loss(net(a * x0 + (1 - a) * noise, t), noise),
         "x_t is not q(x_t | x_0)'s: its coefficients are square roots"),
    ]


LOSS_VISIBLE = [("6 test images at steps 1, 20, 60, 100, 150, 200", 6, 0, [1, 20, 60, 100, 150, 200])]


def ddpm_loss_hidden() -> list[tuple]:
    return [("8 other test images, every step 100", 8, 50, [100] * 8),
            ("3 test images at steps 200, 5, 77", 3, 120, [200, 5, 77])]


def _loss_property(label, n, seed, steps) -> Property:
    def ddpm_loss_on(fn):
        net = trained_model().net
        alpha_bars = schedule_tensors()["alpha_bars"]
        x0, t, noise = test_images(n, seed % 200), torch.tensor(steps, dtype=torch.long), _noise((n, 1, 28, 28), seed + 5)
        with torch.no_grad():
            want = ddpm_loss(net, x0, t, noise, alpha_bars)
            got = fn(net, x0.clone(), t.clone(), noise.clone(), alpha_bars.clone())
            mistakes = loss_mistakes(net, x0, t, noise, alpha_bars)
        call = f"ddpm_loss(the shipped DDPM's network, x0, t = {_steps_text(t)}, noise, alpha_bars) [{label}]"
        if isinstance(got, torch.Tensor) and got.dim() != 0:
            raise AssertionError(f"{call}: the loss has shape {tuple(got.shape)}, expected one number (a 0-dim "
                                 f"tensor): the mean over the batch and the pixels" + _hint(got, mistakes, 1e-5))
        _compare(call, want, got, mistakes, "loss", atol=1e-5)

    ddpm_loss_on.__name__ = f"ddpm_loss on {label}"
    return ddpm_loss_on


def loss_per_noise_level(steps=(10, 100, 190), n: int = 8) -> Property:
    """In the lecture's terms: their loss of the shipped network at a few noise levels, each against the
    reference's and against a network that predicts no noise (ε_θ = 0 scores E[ε²] ≈ 1)."""

    def ddpm_loss_of_the_shipped_model(fn):
        net = trained_model().net
        alpha_bars = schedule_tensors()["alpha_bars"]
        x0 = test_images(n, 7)
        rows, bad = [], False
        for j, step in enumerate(steps):
            t, noise = torch.full((n,), step, dtype=torch.long), _noise(x0.shape, 300 + j)
            with torch.no_grad():
                want = float(ddpm_loss(net, x0, t, noise, alpha_bars))
                got = fn(net, x0.clone(), t, noise.clone(), alpha_bars.clone())
            got = float(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else float("nan")
            bad |= not abs(got - want) <= 1e-5 + 1e-4 * abs(want)
            rows.append(f"t = {step}: yours {got:.4f}, the reference's {want:.4f}, predicting no noise "
                        f"{float(noise.pow(2).mean()):.4f}")
        assert not bad, ("your ddpm_loss of the shipped DDPM on 8 test images, per noise level:\n     "
                         + "\n     ".join(rows) + "\n     (training minimises the reference's: a different number "
                         "is a different objective)")

    return ddpm_loss_of_the_shipped_model


def ddpm_loss_checks(inputs=None, in_the_model: bool = True) -> list[Property]:
    props = [_loss_property(*item) for item in (LOSS_VISIBLE if inputs is None else inputs)]
    return props + ([loss_per_noise_level()] if in_the_model else [])


# --------------------------------------------------------------------------- exercise 5: one reverse step
def reverse_mistakes(net, x_t, t, z, alpha_bars, sigmas) -> list[tuple[Callable, str]]:
    a = alpha_bars.double()
    a_t = a[t - 1]
    a_prev = a[t - 2] if t > 1 else torch.ones((), dtype=torch.float64)
    beta = 1 - a_t / a_prev
    steps = torch.full((len(x_t),), t, dtype=torch.long)
    eps = net(x_t, steps)
    raw = (x_t - float((1 - a_t).sqrt()) * eps) / float(a_t.sqrt())
    c0, ct = float(a_prev.sqrt() * beta / (1 - a_t)), float((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t))
    x0 = raw.clamp(-1, 1)
    sigma = float(sigmas[t - 1])
    noisy = t != 1

    def plus(mean, scale=sigma, always=False):
        return mean + scale * z if (noisy or always) else mean

    a_wrap = a[t - 2]                      # ᾱ_0 read as alpha_bars[-1] = ᾱ_T at t = 1
    beta_w = 1 - a_t / a_wrap
    wrapped = (float(a_wrap.sqrt() * beta_w / (1 - a_t)) * x0 + float((1 - beta_w).sqrt() * (1 - a_wrap) / (1 - a_t)) * x_t)
    eps_prev = net(x_t, steps - 1)
    x0_prev = ((x_t - float((1 - a_t).sqrt()) * eps_prev) / float(a_t.sqrt())).clamp(-1, 1)
    return [
        (lambda: plus(c0 * raw + ct * x_t),
         "x̂_0 was not clipped to [−1, 1], the data's range (without it, the first steps, where β_t is close to 1, "
         "throw the chain far outside the images' range)"),
        (lambda: plus(c0 * x0 + ct * x_t, always=True), "no noise is added at the last step, t = 1: x_0 is the mean"),
        (lambda: c0 * x0 + ct * x_t, "no noise was added: x_{t−1} ~ N(μ, σ_t² I) needs + σ_t z"),
        (lambda: plus(c0 * x0 + ct * x_t, scale=sigma ** 2), "sigmas are standard deviations: add σ_t z, not σ_t² z"),
        (lambda: plus(ct * x0 + c0 * x_t), "the posterior mean's two coefficients are swapped (x̂_0's and x_t's)"),
        (lambda: plus(wrapped), "at t = 1, ᾱ_{t−1} = ᾱ_0 = 1 (no noise yet): alpha_bars[t − 2] wraps around to ᾱ_T"),
        (lambda: plus(c0 * x0_prev + ct * x_t), "the network is told the step t itself (1 … T), not t − 1"),
        (lambda: plus(x0), "x̂_0 is the model's guess of the clean image; x_{t−1} is the posterior mean at it, plus noise"),
        (lambda: plus(float(a_prev.sqrt()) * x0 + float((1 - a_prev).sqrt()) * eps),
         "that is a DDIM step (the predicted noise re-used): the ancestral step takes the posterior mean"),
    ]


REVERSE_VISIBLE = [("2 test images noised to x_t, at steps 200, 120, 30, 2 and 1", 2, 0, [200, 120, 30, 2, 1])]


def reverse_step_hidden() -> list[tuple]:
    return [("3 other test images, steps 199, 64, 9, 1", 3, 60, [199, 64, 9, 1]),
            ("1 test image, steps 150, 3", 1, 140, [150, 3])]


def _reverse_property(label, n, seed, steps) -> Property:
    def reverse_step_on(fn):
        net = trained_model().net
        sched = schedule_tensors()
        x0 = test_images(n, seed % 200)
        for j, step in enumerate(steps):
            t = torch.full((n,), step, dtype=torch.long)
            x_t = q_sample(x0, t, _noise(x0.shape, seed + 10 * j), sched["alpha_bars"])
            z = _noise(x0.shape, seed + 10 * j + 1)
            with torch.no_grad():
                want = reverse_step(net, x_t, step, z, sched["alpha_bars64"], sched["sigmas"])
                got = fn(net, x_t.clone(), step, z.clone(), sched["alpha_bars64"].clone(), sched["sigmas"].clone())
                mistakes = reverse_mistakes(net, x_t, step, z, sched["alpha_bars64"], sched["sigmas"])
            call = (f"reverse_step(the shipped DDPM's network, x_t, t = {step}, z, alpha_bars, sigmas) [{label}; "
                    f"x_t = q_sample of the images at t]")
            _compare(call, want, got, mistakes, "x_{t−1}", atol=2e-5)

    reverse_step_on.__name__ = f"reverse_step on {label}"
    return reverse_step_on


def reference_samples(n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_T, every step's z (T, n, 1, 28, 28), the images the reference's ancestral chain makes from them in
    [−1, 1]), cached: what an answer's chain is compared with."""
    key = ("samples", n, seed)
    if key not in _CACHE:
        model, sched = trained_model(), schedule_tensors()
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(n, 1, 28, 28, generator=g)
        zs = torch.randn(model.T, n, 1, 28, 28, generator=g)
        x = x_T
        with torch.no_grad(), diffusion.one_thread():
            for t in range(model.T, 0, -1):
                x = reverse_step(model.net, x, t, zs[t - 1], sched["alpha_bars64"], sched["sigmas"])
        _CACHE[key] = (x_T, zs, x)
    return _CACHE[key]


def sample_with(fn: Callable, x_T: torch.Tensor, zs: torch.Tensor, model: diffusion.DDPM | None = None) -> torch.Tensor:
    """All T ancestral steps x_T → x_0 with the step ``fn`` (the exercise's signature) on the shipped model."""
    model = model or trained_model()
    sched = schedule_tensors(model)
    x = x_T
    with torch.no_grad():
        for t in range(model.T, 0, -1):
            x = fn(model.net, x, t, zs[t - 1], sched["alpha_bars64"], sched["sigmas"])
    return x


def sampling_with_the_answer(n: int = 2, tolerance: float = 2e-3) -> Property:
    """In the lecture's terms: their step, used for all T steps of the shipped DDPM from the same x_T and
    the same z as the reference's chain, must draw the same images.

    Feedback only: under the grader (``LECTURE13_GRADING=1``) it passes at once. Its 2 × T network calls,
    each sending the U-Net through the grader's channel, do not fit the grader's time per exercise on a
    busy machine; the points are decided by the single steps (visible and hidden: 11 steps from t = T to 1,
    t = 1 included), which every error this chain would show also fails."""

    def reverse_step_sampling_the_shipped_ddpm(fn):
        if os.environ.get(GRADING_ENV) == "1":
            return
        model = trained_model()
        x_T, zs, want = reference_samples(n)
        with diffusion.one_thread():
            got = sample_with(fn, x_T, zs, model)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise AssertionError(f"sampling with your reverse_step: the chain ended with shape "
                                 f"{tuple(getattr(got, 'shape', ()))}, expected {tuple(want.shape)}")
        diff = float((got.double() - want.double()).abs().max()) if not torch.isnan(got).any() else math.inf
        if diff <= tolerance:
            return
        from .. import metrics

        probs = lambda x: metrics.class_probabilities(diffusion.to_unit(x.float().nan_to_num(0)))  # noqa: E731
        names = lambda p: ", ".join(f"class {int(c)} ({float(v):.0%})" for v, c in zip(*p.max(1)))  # noqa: E731
        raise AssertionError(
            f"your reverse_step, used for all {model.T} steps of the shipped DDPM on {n} images from the same x_T "
            f"and the same z as the reference's chain: its images differ from the reference's by up to {diff:.3g} "
            f"(expected < {tolerance:g}; images in [−1, 1]); your images range over [{float(got.min()):.3g}, "
            f"{float(got.max()):.3g}] (the data: [−1, 1]). The course's classifier sees in yours {names(probs(got))}; "
            f"in the reference's {names(probs(want))}.\n     hint: an error in one step is carried through the "
            f"{model.T - 1} after it; the single steps above say which step goes wrong")

    return reverse_step_sampling_the_shipped_ddpm


def reverse_step_checks(inputs=None, in_the_model: bool = True) -> list[Property]:
    props = [_reverse_property(*item) for item in (REVERSE_VISIBLE if inputs is None else inputs)]
    return props + ([sampling_with_the_answer()] if in_the_model else [])
