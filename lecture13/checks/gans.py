"""Checks for notebook 04's exercises (generative adversarial networks).

* :func:`optimal_discriminator_checks`: D*(x) from two log-densities, finite for densities far
  below 1 (log-densities of −800, as a density in 784 dimensions has);
* :func:`iteration_checks`: one iteration of Algorithm 1 — k steps of D on detached samples, one
  step of G that leaves D alone, the returned mean D loss and G loss, the ``generator_loss``
  argument honoured, and no stale gradient carried into G's step over several iterations;
* :func:`mode_shares_checks`: each mode's share of the samples within 3σ of its centre, then the
  share off every mode, on the ring of 8 Gaussians and on another ring.

Every check is a *property*: a callable that takes the student's function, runs it on a named
input and raises ``AssertionError`` with the input, what was expected, what came back and, when
the answer matches a usual mistake, a hint about that mistake. They work through the grader's
channel: only tensors, numbers, modules, optimizers and functions of torch/lecture13 cross.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import gan, toy
from .common import close, matching_hint

Property = Callable[[Callable], None]


# --------------------------------------------------------------------------- helpers
def _fmt(t: torch.Tensor, digits: int = 4, limit: int = 9) -> str:
    """A short tensor for a message: its values (the first ``limit``), rounded."""
    if not isinstance(t, torch.Tensor):
        return repr(t)
    flat = t.detach().flatten().double().tolist()
    text = ", ".join(f"{v:.{digits}g}" for v in flat[:limit]) + (", …" if len(flat) > limit else "")
    return f"[{text}]" + (f" (shape {tuple(t.shape)})" if len(flat) > limit else "")


_close = close
_hint = matching_hint


def _compare(call: str, expected: torch.Tensor, got, mistakes=(), what: str = "result", nan_hint: str = "") -> None:
    """Raise AssertionError saying how ``got`` differs from ``expected`` (with a hint if it matches a mistake)."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{call} should return a tensor, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"{call}: {what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
                             + _hint(got, mistakes))
    if not got.is_floating_point():
        raise AssertionError(f"{call}: {what} has dtype {got.dtype}, expected a floating-point tensor")
    if bool(torch.isnan(got).any() & ~torch.isnan(expected).any()):
        raise AssertionError(f"{call}: {what} contains NaN (expected {_fmt(expected)}, got {_fmt(got)})"
                             + (f"\n     hint: {nan_hint}" if nan_hint else ""))
    if not _close(got, expected):
        diff = (got.detach().double() - expected.double()).abs().nan_to_num(math.inf)
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.dim() else ()
        at = f" at index {where}" if where else ""
        raise AssertionError(f"{call}: wrong {what}{at}: expected {_fmt(expected)}, got {_fmt(got)}"
                             + _hint(got, mistakes))


# --------------------------------------------------------------------------- the optimal discriminator
def _log(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).log().float()


OPTIMAL_D_VISIBLE = [
    ("moderate densities (p_data, p_g) = (0.4, 0.1), (0.05, 0.05), (0.2, 0.3), (0.3, 1e-4)",
     _log([0.4, 0.05, 0.2, 0.3]), _log([0.1, 0.05, 0.3, 1e-4])),
    ("log-densities far below 0, as in 784 dimensions: (−800, −800), (−805, −800), (−790, −800)",
     torch.tensor([-800.0, -805.0, -790.0]), torch.tensor([-800.0, -800.0, -800.0])),
    ("one density 1e300 times the other: (−1000, −300), (−300, −1000)",
     torch.tensor([-1000.0, -300.0]), torch.tensor([-300.0, -1000.0])),
]


def optimal_discriminator_hidden() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(40)
    return [
        ("a batch (3, 50) of log-densities around −500", -500 + 100 * torch.randn(3, 50, generator=g),
         -500 + 100 * torch.randn(3, 50, generator=g)),
        ("log-densities above 0 (a narrow peak): (120, 118), (95, 100)", torch.tensor([120.0, 95.0]),
         torch.tensor([118.0, 100.0])),
        ("p_g = 0 at the first point (log −inf): D* = 1 there", torch.tensor([-3.0, -2.0]),
         torch.tensor([-math.inf, -2.5])),
        ("float64 log-densities of the 1-D toy", toy.Mixture1D((-2.0, 2.0), (0.5, 0.5), (0.5, 0.5)).log_prob(
            torch.linspace(-4, 4, 9), torch.float64), toy.Mixture1D((0.0,), (1.5,), (1.0,)).log_prob(
            torch.linspace(-4, 4, 9), torch.float64)),
    ]


def optimal_discriminator_checks(inputs=None) -> list[Property]:
    """Properties of ``optimal_discriminator(log_p_data, log_p_g)``: D* elementwise, same shape."""
    inputs = OPTIMAL_D_VISIBLE if inputs is None else inputs
    return [_optimal_d_property(label, a, b) for label, a, b in inputs]


def _optimal_d_property(label: str, log_pd: torch.Tensor, log_pg: torch.Tensor) -> Property:
    def optimal_discriminator_on(fn):
        expected = gan.optimal_discriminator_from_logs(log_pd, log_pg)
        got = fn(log_pd.clone(), log_pg.clone())
        call = f"optimal_discriminator(log_p_data={_fmt(log_pd)}, log_p_g={_fmt(log_pg)}) [{label}]"
        mistakes = [
            (lambda: torch.sigmoid(log_pg - log_pd),
             "that is p_g / (p_data + p_g), the probability of 'generated': D*(x) is the probability that x is real"),
            (lambda: log_pd - torch.logaddexp(log_pd, log_pg), "that is log D*(x): return D*(x) itself, a probability"),
            (lambda: torch.exp(log_pd - log_pg), "that is the density ratio p_data / p_g, not D*: it is not in [0, 1]"),
            (lambda: log_pd / (log_pd + log_pg),
             "the arguments are log-densities: log p_data / (log p_data + log p_g) is not p_data / (p_data + p_g)"),
            (lambda: log_pd.exp() / (log_pd.exp() + log_pg.exp()),
             "the ratio of exp(log p): for log-densities far below 0 both exp() are 0 (or inf far above): "
             "write D* so that only the difference of the log-densities is exponentiated"),
        ]
        _compare(call, expected, got, mistakes, what="D*", nan_hint=(
            "exp(−800) underflows to 0 (and exp(120) overflows to inf), so a ratio of exp(log p) is 0/0 or inf/inf "
            "= NaN: divide numerator and denominator by p_data(x) or by the larger density first, in log space"))
        if bool(((got < 0) | (got > 1)).any()):
            raise AssertionError(f"{call}: D* must lie in [0, 1], got {_fmt(got)}")

    optimal_discriminator_on.__name__ = f"optimal_discriminator on {label}"
    return optimal_discriminator_on


# --------------------------------------------------------------------------- one GAN iteration
class ConstantGenerator(nn.Module):
    """A probe generator that ignores its noise, G(z) = b: any order of noise draws gives the same
    samples, so an answer's updates can be compared with the reference's exactly."""

    z_dim = 3

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([[0.5, -1.0]]))

    def forward(self, z):
        return self.bias + 0.0 * z[:, :2]


def _probe_gan(seed: int = 0, batches: int = 1):
    """(G, D, real): a constant G, a small MLP discriminator, 12 real samples per batch."""
    torch.manual_seed(seed)
    G, D = ConstantGenerator(), gan.MLPDiscriminator(2, hidden=8, depth=1)
    real = [torch.randn(12, 2) + torch.tensor([2.0, 1.0]) for _ in range(batches)]
    return G, D, (real[0] if batches == 1 else real)


class _Counting:
    """Wraps an optimizer, counting its steps (and calling ``on_step`` after each)."""

    def __init__(self, optimizer, on_step=None):
        self.optimizer, self.steps, self.on_step = optimizer, 0, on_step

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        self.steps += 1
        self.optimizer.step()
        if self.on_step:
            self.on_step()

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


def _run_probe(fn: Callable, k: int, lr: float = 0.1, **kwargs):
    """One call of ``fn`` on the probe, watching G's backward passes and D's state after each step."""
    G, D, real = _probe_gan()
    backward_into_g = []

    def count_backward(module, inputs, output):   # a gradient reaching G's output = a backward pass into G
        if output.requires_grad:
            output.register_hook(lambda grad: backward_into_g.append(1))

    G.register_forward_hook(count_backward)
    after_d_steps: list[dict] = []
    opt_d = _Counting(torch.optim.SGD(D.parameters(), lr=lr),
                      on_step=lambda: after_d_steps.append(copy.deepcopy(D.state_dict())))
    opt_g = _Counting(torch.optim.SGD(G.parameters(), lr=lr))
    start_d, start_b = copy.deepcopy(D.state_dict()), G.bias.detach().clone()
    out = fn(G, D, opt_d, opt_g, real, k, **kwargs)
    return dict(G=G, D=D, opt_d=opt_d, opt_g=opt_g, backward_into_g=len(backward_into_g), out=out, real=real,
                after_d_steps=after_d_steps, start_d=start_d, start_b=start_b)


def _d_with(state: dict) -> nn.Module:
    D = gan.MLPDiscriminator(2, hidden=8, depth=1)
    D.load_state_dict(state)
    return D


def _g_step(D: nn.Module, b: torch.Tensor, loss: Callable, lr: float) -> torch.Tensor:
    """The step SGD takes on G(z) = b for the generator loss ``loss`` against a fixed D."""
    b = b.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(D(b.expand(4, -1))), b)
    return -lr * grad


LOSS_NAMES = {gan.generator_loss_nonsaturating: "the non-saturating loss −log D(G(z))",
              gan.generator_loss_saturating: "the saturating (minimax) loss log(1 − D(G(z)))"}


def iteration_checks(k: int = 3) -> list[Property]:
    """Properties that a student's ``gan_iteration(G, D, opt_d, opt_g, real, k, generator_loss)`` must
    have, each raising AssertionError with what is wrong (used with :func:`lecture13.exercises.check`)."""

    def step_counts(fn):
        got = _run_probe(fn, k)
        assert got["opt_d"].steps == k, (f"with k={k}, opt_d.step() should run {k} times (once per discriminator "
                                         f"minibatch), it ran {got['opt_d'].steps} times")
        assert got["opt_g"].steps == 1, f"opt_g.step() should run once per iteration, it ran {got['opt_g'].steps} times"

    def no_gradient_into_g_during_d_steps(fn):
        got = _run_probe(fn, k)
        assert got["backward_into_g"] <= 1, (
            f"gradients flowed back into G {got['backward_into_g']} times; only G's own step should reach G. "
            "Detach G's samples in the discriminator's step: fake = G(z).detach()")
        assert got["backward_into_g"] == 1, "no gradient reached G: the generator's loss must be computed on D(G(z)) without detach"

    def generator_step_leaves_d_alone(fn):
        got = _run_probe(fn, k)
        if len(got["after_d_steps"]) < k:
            return  # too few D steps: step_counts reports it
        after_k = got["after_d_steps"][k - 1]
        for name, value in got["D"].state_dict().items():
            assert torch.equal(value, after_k[name]), (
                f"D's parameters changed after its k={k} steps: the generator's step must update G only "
                "(call opt_g.step(), never opt_d.step(), after the generator loss)")

    def same_update_as_reference(fn):
        got, want = _run_probe(fn, k), _run_probe(gan.gan_iteration, k)
        d_got = torch.cat([(v - got["start_d"][n]).flatten() for n, v in got["D"].state_dict().items()])
        d_want = torch.cat([(v - want["start_d"][n]).flatten() for n, v in want["D"].state_dict().items()])
        cos = float(F.cosine_similarity(d_got, d_want, dim=0))
        assert cos > -0.5, ("D moved the opposite way to gradient descent on its loss: check the sign of the "
                            "discriminator loss (D should *increase* log D(x) + log(1 − D(G(z))))")
        assert torch.allclose(d_got, d_want, atol=1e-5), (
            f"D's update differs from the reference (cosine {cos:.3f}): use gan.discriminator_loss(D(real), D(fake)) "
            "on each of the k minibatches real.tensor_split(k), with opt_d.zero_grad() before each backward")
        g_got, g_want = got["G"].bias.detach() - got["start_b"], want["G"].bias.detach() - want["start_b"]
        assert float((g_got * g_want).sum()) > 0, ("G moved the wrong way: the generator should *minimise* the "
                                                   "non-saturating loss −log D(G(z)) (check its sign)")
        assert torch.allclose(g_got, g_want, atol=1e-5), (
            f"G's update differs from the reference: expected a step of {_fmt(g_want)}, got {_fmt(g_got)}; "
            "compute generator_loss(D(G(z))) after the k D steps")

    def returns_the_losses(fn):
        got = _run_probe(fn, k)
        out = got["out"]
        assert isinstance(out, dict) and {"loss_d", "loss_g"} <= set(out), (
            f"return a dict with the numbers to log, {{'loss_d': ..., 'loss_g': ...}}; got {type(out).__name__}")
        assert all(isinstance(out[key], float) for key in ("loss_d", "loss_g")), \
            "loss_d and loss_g should be Python floats (use float(loss.detach()))"
        if len(got["after_d_steps"]) != k:
            return  # step_counts reports it
        # D's loss at step i: D as it was before that step, on minibatch i and G's (constant) samples
        states = [got["start_d"]] + got["after_d_steps"][:-1]
        losses = []
        with torch.no_grad():
            for state, x in zip(states, got["real"].tensor_split(k)):
                D = _d_with(state)
                losses.append(float(gan.discriminator_loss(D(x), D(got["start_b"].expand(len(x), -1)))))
            loss_g = float(gan.generator_loss_nonsaturating(_d_with(got["after_d_steps"][-1])(got["start_b"])))
        mean = sum(losses) / k
        if not math.isclose(out["loss_d"], mean, rel_tol=1e-4, abs_tol=1e-5):
            hint = ""
            if math.isclose(out["loss_d"], sum(losses), rel_tol=1e-4, abs_tol=1e-5):
                hint = f" — that is their sum: divide by k={k}"
            elif math.isclose(out["loss_d"], losses[-1], rel_tol=1e-4, abs_tol=1e-5):
                hint = " — that is the last one only: keep each step's loss and return their mean"
            elif math.isclose(out["loss_d"], losses[0], rel_tol=1e-4, abs_tol=1e-5):
                hint = " — that is the first one only: keep each step's loss and return their mean"
            raise AssertionError(
                f"loss_d should be the mean of the k={k} discriminator losses [{', '.join(f'{v:.5f}' for v in losses)}], "
                f"{mean:.5f}; got {out['loss_d']:.5f}{hint}")
        assert math.isclose(out["loss_g"], loss_g, rel_tol=1e-4, abs_tol=1e-5), (
            f"loss_g should be the generator's loss on D(G(z)) after D's k={k} steps, {loss_g:.5f}; got "
            f"{out['loss_g']:.5f}" + (" (its negative: check the sign)" if math.isclose(-out["loss_g"], loss_g, rel_tol=1e-4)
                                      else ""))

    def uses_the_generator_loss_argument(fn):
        sat = gan.generator_loss_saturating
        got = _run_probe(fn, k, generator_loss=sat)
        if len(got["after_d_steps"]) != k:
            return  # step_counts reports it
        D_k = _d_with(got["after_d_steps"][-1])
        want, ns = _g_step(D_k, got["start_b"], sat, 0.1), _g_step(D_k, got["start_b"], gan.generator_loss_nonsaturating, 0.1)
        step = got["G"].bias.detach() - got["start_b"]
        if not torch.allclose(step, want, atol=1e-6, rtol=1e-4):
            if torch.allclose(step, ns, atol=1e-6, rtol=1e-4):
                raise AssertionError(
                    f"ignores the generator_loss argument: called with generator_loss=gan.generator_loss_saturating, G "
                    f"took the non-saturating loss's step {_fmt(step, 5)} instead of the saturating loss's "
                    f"{_fmt(want, 5)}. Use loss_g = generator_loss(D(G(z))), not gan.generator_loss_nonsaturating")
            raise AssertionError(f"with generator_loss=gan.generator_loss_saturating, G should take the saturating "
                                 f"loss's step {_fmt(want, 5)}, got {_fmt(step, 5)}")
        out = got["out"]
        with torch.no_grad():
            value = float(sat(D_k(got["start_b"])))
        if isinstance(out, dict) and isinstance(out.get("loss_g"), float):
            assert math.isclose(out["loss_g"], value, rel_tol=1e-4, abs_tol=1e-5), (
                f"with generator_loss=gan.generator_loss_saturating, loss_g should be that loss, {value:.5f}; got "
                f"{out['loss_g']:.5f}")

    def no_stale_gradients_over_iterations(fn, iterations: int = 3, lr: float = 0.1):
        G, D, reals = _probe_gan(seed=1, batches=iterations)
        opt_d, opt_g = torch.optim.SGD(D.parameters(), lr=lr), torch.optim.SGD(G.parameters(), lr=lr)
        fresh = []
        for t, real in enumerate(reals):
            b = G.bias.detach().clone()
            fn(G, D, opt_d, opt_g, real, k)
            fresh.append(_g_step(D, b, gan.generator_loss_nonsaturating, lr))   # D after this iteration's k steps
            step = G.bias.detach() - b
            if torch.allclose(step, fresh[-1], atol=1e-6, rtol=1e-4):
                continue
            stale = t > 0 and torch.allclose(step, sum(fresh), atol=1e-6, rtol=1e-4)
            if stale:
                raise AssertionError(
                    f"stale gradients: G's step in iteration {t + 1} of {iterations} (same G, D and optimizers) was the sum "
                    f"of the steps of iterations 1…{t + 1}, {_fmt(step, 5)} instead of {_fmt(fresh[-1], 5)}: the gradients "
                    "of earlier iterations were still in G's .grad. Call opt_g.zero_grad() before loss_g.backward()")
            raise AssertionError(
                f"over {iterations} iterations on the same G, D and optimizers, G's step in iteration {t + 1} should be "
                f"{_fmt(fresh[-1], 5)} (from this iteration's generator loss only), got {_fmt(step, 5)}")

    return [step_counts, no_gradient_into_g_during_d_steps, generator_step_leaves_d_alone, same_update_as_reference,
            returns_the_losses, uses_the_generator_loss_argument, no_stale_gradients_over_iterations]


# --------------------------------------------------------------------------- mode coverage on the ring
def _ring(modes: int = 8, radius: float = 2.0, std: float = 0.05):
    return toy.ring_of_gaussians(modes=modes, radius=radius, std=std)


def _boundary_samples(ring, mode: int = 3) -> torch.Tensor:
    """Samples at 2.9σ (inside) and 3.1σ (outside) of one centre, in four directions, 12 at the origin
    and 2 far from every mode."""
    angles = torch.arange(4) * (math.pi / 2) + 0.3
    unit = torch.stack([angles.cos(), angles.sin()], dim=1)
    inside, outside = ring.centres[mode] + 2.9 * ring.std * unit, ring.centres[mode] + 3.1 * ring.std * unit
    return torch.cat([inside, outside, torch.zeros(12, 2), torch.tensor([[6.0, 0.0], [0.0, -7.0]])])


def mode_shares_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """(label, samples, centres, std) for the mode-coverage exercise."""
    g = torch.Generator().manual_seed(50 if hidden else 5)
    ring = _ring()
    angle = torch.rand(400, generator=g) * 2 * math.pi
    if not hidden:
        return [
            ("1,000 samples of mode 0 only (about 1% beyond 3σ)", ring.centres[0] + ring.std * torch.randn(1000, 2, generator=g),
             ring.centres, ring.std),
            ("4 samples at 2.9σ and 4 at 3.1σ of mode 3, 12 at the origin, 2 far away", _boundary_samples(ring), ring.centres, ring.std),
            ("400 samples spread uniformly on the circle", 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1),
             ring.centres, ring.std),
        ]
    other = _ring(modes=5, radius=1.0, std=0.1)
    return [
        ("2,000 samples of the ring's data", ring.sample(2000, g), ring.centres, ring.std),
        ("a ring of 5 modes, radius 1, σ = 0.1: 300 of its samples and 100 at the origin",
         torch.cat([other.sample(300, g), torch.zeros(100, 2)]), other.centres, other.std),
        ("the boundary of mode 1 of the 5-mode ring", _boundary_samples(other, mode=1), other.centres, other.std),
        ("7 samples, all far away", torch.full((7, 2), 10.0), ring.centres, ring.std),
    ]


def mode_shares_checks(inputs=None) -> list[Property]:
    """Properties of ``mode_shares(samples, centres, std)`` → shares ``(modes + 1,)``."""
    inputs = mode_shares_inputs() if inputs is None else inputs
    return [_mode_shares_property(*item) for item in inputs]


def _mode_shares_property(label: str, samples: torch.Tensor, centres: torch.Tensor, std: float) -> Property:
    def mode_shares_on(fn):
        expected = toy.mode_shares_from_centres(samples, centres, std)
        got = fn(samples.clone(), centres.clone(), std)
        n, modes = len(samples), len(centres)
        call = (f"mode_shares(samples of shape {tuple(samples.shape)}, centres of shape {tuple(centres.shape)}, "
                f"std={std:g}) [{label}]")
        d = torch.cdist(samples, centres)
        nearest_d, nearest = d.min(dim=1)

        def shares_for(assign):
            return F.one_hot(assign, modes + 1).sum(0).double() / n

        off = torch.full_like(nearest, modes)
        mistakes = [
            (lambda: expected * n, "those are counts: divide by the number of samples, so the shares sum to 1"),
            (lambda: expected[:-1], f"the last entry, the share off every mode, is missing: return {modes + 1} shares"),
            (lambda: torch.cat([expected[-1:], expected[:-1]]), "the share off every mode goes last, after the modes'"),
            (lambda: shares_for(torch.where(nearest_d <= 3.0, nearest, off)),
             "the radius is 3σ (3 * std), not 3"),
            (lambda: shares_for(nearest), "every sample counted for its nearest mode: one that is more than 3σ "
                                          "from every centre is off every mode"),
            (lambda: shares_for(torch.where(nearest_d ** 2 <= 3 * std, nearest, off)),
             "a squared distance compared with 3σ: compare the distance itself with 3 * std"),
            (lambda: shares_for(torch.where(nearest_d <= 3 * std ** 2, nearest, off)),
             "std is a standard deviation, not a variance: the radius is 3 * std"),
            (lambda: torch.cat([expected[:-1] / expected[:-1].sum().clamp_min(1e-12), expected[-1:]]),
             "the modes' shares are of all the samples (the off-mode ones included), so the modes and the "
             "off-mode share together sum to 1"),
            (lambda: (expected > 0).double(), "a share, not whether some sample reached the mode"),
        ]
        _compare(call, expected, got, mistakes, what="shares")
        assert abs(float(got.sum()) - 1) < 1e-4, f"{call}: the shares should sum to 1, they sum to {float(got.sum()):.4f}"

    mode_shares_on.__name__ = f"mode_shares on {label}"
    return mode_shares_on
