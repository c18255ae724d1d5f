"""Checks for notebook 03's exercises (variational autoencoders).

* :func:`train_step_checks`: ``vae_train_step(model, optimizer, x, eps)``, one optimiser step of a VAE on a
  batch with the negative ELBO at the reparameterised sample z = μ + σ ⊙ eps: the three numbers it returns
  are the batch's −ELBO, reconstruction and KL terms *before* the step (means over the images), the
  parameters move exactly as one step of gradient descent on the −ELBO, and over several calls no gradient
  of an earlier batch is carried into a later step (a missing ``zero_grad``). A step on the KL or the
  reconstruction term alone, uphill, on the sum over the batch, or at z = μ (the noise ignored) is named;
* :func:`latent_usage_checks`: ``latent_usage(mu, logvar, threshold)``, the KL of each latent dimension
  (mean over the images), its activity Var_x(E_q[z_j | x]) and the number of active dimensions (activity
  strictly above the threshold, Burda et al. 2016), on hand-made codes, on random codes with collapsed
  dimensions and (hidden) on the codes of a shipped model. A sum over the images, a KL summed over the
  dimensions, a threshold on μ or on σ² instead of on the variance of μ, a count by KL and ``>=`` are named.

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
import torch.nn.functional as F
from torch import nn

from .. import data, vae
from ..likelihood import bernoulli_log_likelihood

Property = Callable[[Callable], None]
KEYS = ("loss", "recon", "kl")


def _fmt(values, digits: int = 4, limit: int = 6) -> str:
    flat = torch.as_tensor(values).detach().flatten().double().tolist()
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:limit]) + (", …" if len(flat) > limit else "") + "]"


def _one_thread(prop: Property) -> Property:
    """Run a property on one thread: the probes are tiny, and on a busy CPU two threads make each of their
    steps many times slower."""
    def run(fn):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            prop(fn)
        finally:
            torch.set_num_threads(threads)

    run.__name__ = prop.__name__
    return run


# --------------------------------------------------------------------------- the training step
def _probe(seed: int, batch: int = 4, latent_dim: int = 3) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small VAE (seeded, the global random state untouched), a batch of binary images and its noise eps.
    The encoder's last layer is scaled up, so that the codes sit away from the prior (a KL of several nats, as
    in a trained VAE) and the KL's gradient is a sizeable part of the step."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = vae.VAE(latent_dim=latent_dim, channels=2, hidden=16)
    with torch.no_grad():
        last = model.encoder.net[-1]
        last.weight.mul_(8.0)
        last.bias.mul_(8.0)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.bernoulli(torch.full((batch, 1, 28, 28), 0.3), generator=g)
    eps = torch.randn(batch, latent_dim, generator=g)
    return model, x, eps


def _parts(model: nn.Module, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """recon and kl per image (N,) at z = μ + σ ⊙ eps, with gradients."""
    mu, logvar = model.encode(x)
    logits = model.decode(vae.reparameterize(mu, logvar, eps), x)
    return {"recon": -bernoulli_log_likelihood(logits, x), "kl": vae.gaussian_kl(mu, logvar), "logits": logits}


# The loss each usual mistake takes one step on (from the per-image terms at the given noise).
_MISTAKES: dict[str, Callable[[dict, torch.Tensor], torch.Tensor]] = {
    "right": lambda p, x: (p["recon"] + p["kl"]).mean(),
    "kl only": lambda p, x: p["kl"].mean(),
    "recon only": lambda p, x: p["recon"].mean(),
    "uphill": lambda p, x: -(p["recon"] + p["kl"]).mean(),
    "sum": lambda p, x: (p["recon"] + p["kl"]).sum(),
    "kl subtracted": lambda p, x: (p["recon"] - p["kl"]).mean(),
    "pixel mean": lambda p, x: F.binary_cross_entropy_with_logits(p["logits"], x) + p["kl"].mean(),
}
_STEP_HINTS = {
    "kl only": "the step minimised the KL term alone: take the step on recon + kl (the whole −ELBO)",
    "recon only": "the step minimised the reconstruction term alone: the KL term must be in the loss you call "
                  "backward() on",
    "uphill": "the parameters moved uphill: minimise the −ELBO (the loss), do not maximise it",
    "sum": "a step N times too large: that is the sum over the batch; take the mean over the images",
    "kl subtracted": "the KL was subtracted: −ELBO = reconstruction + KL",
    "pixel mean": "the reconstruction term was averaged over the pixels (F.binary_cross_entropy_with_logits's "
                  "default): sum it over each image's pixels, mean over the batch",
    "at mu": "that is the step with z = μ: the reconstruction term is estimated at the reparameterised sample "
             "z = μ + σ ⊙ eps, so the gradient reaches log σ² through z (and eps must be used)",
}


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


def _reference_steps(model: nn.Module, batches, lr: float, mistake: str = "right",
                     accumulate: bool = False) -> torch.Tensor:
    """The parameters after SGD steps (one per (x, eps) in ``batches``) on the loss of ``mistake``, from a copy
    (``accumulate``: without clearing the gradients between the steps)."""
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(twin.parameters(), lr=lr)
    for x, eps in batches:
        if not accumulate:
            opt.zero_grad()
        noise = torch.zeros_like(eps) if mistake == "at mu" else eps
        _MISTAKES["right" if mistake == "at mu" else mistake](_parts(twin, x, noise), x).backward()
        opt.step()
    return _flat(twin)


@torch.no_grad()
def _values(model: nn.Module, x: torch.Tensor, eps: torch.Tensor) -> dict[str, float]:
    p = _parts(model, x, eps)
    return {"loss": float((p["recon"] + p["kl"]).mean()), "recon": float(p["recon"].mean()), "kl": float(p["kl"].mean())}


def _as_parts(out, call: str) -> dict[str, float]:
    if not isinstance(out, dict) or not set(KEYS) <= set(out):
        what = f"a dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__
        raise AssertionError(f"{call} should return a dict with the keys 'loss', 'recon' and 'kl' (the −ELBO and its "
                             f"two terms, as numbers), got {what}")
    values = {}
    for k in KEYS:
        try:
            values[k] = float(out[k])
        except (TypeError, ValueError, RuntimeError):
            raise AssertionError(f"{call}: out[{k!r}] should be a number (float(...)), got {type(out[k]).__name__}") from None
    return values


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-4)


def _moved_as(moved: torch.Tensor, expected: torch.Tensor) -> bool:
    return bool(torch.allclose(moved, expected, rtol=1e-3, atol=1e-7 + 1e-3 * float(expected.abs().max())))


def train_step_checks(hidden: bool = False, lr: float = 0.01) -> list[Property]:
    """Properties of ``vae_train_step(model, optimizer, x, eps)`` (for :func:`lecture13.exercises.check`); plain
    SGD with learning rate ``lr``, so that one step is exactly ``θ − lr · ∇(−ELBO)``."""
    seed = 60 if hidden else 0
    call = (f"vae_train_step(model (a small VAE, latent_dim=3), torch.optim.SGD(model.parameters(), lr={lr}), "
            "x (4 binary images), eps (shape (4, 3)))")

    def returns_the_elbo_terms_before_the_step(fn):
        model, x, eps = _probe(seed)
        want = _values(model, x, eps)
        at_mu = _values(model, x, torch.zeros_like(eps))
        got = _as_parts(fn(model, torch.optim.SGD(model.parameters(), lr=lr), x, eps), call)
        wrong = [k for k in KEYS if not _close(got[k], want[k])]
        if not wrong:
            return
        after = _values(model, x, eps)                              # the model as the answer left it
        k = wrong[0]
        hint = ""
        if all(_close(got[j], after[j], 1e-5) for j in KEYS) and not _close(after["loss"], want["loss"], 1e-5):
            hint = " — those are the values *after* the step: return the numbers of the loss you called backward() on"
        elif all(_close(got[j], at_mu[j]) for j in KEYS):
            hint = (" — those are the terms at z = μ: the reconstruction term is estimated at the sample "
                    "z = μ + σ ⊙ eps, with the eps passed in")
        elif all(_close(got[j], len(x) * want[j], 1e-3) for j in KEYS):
            hint = " — those are sums over the batch: take the mean over the images"
        elif _close(got["loss"], want["recon"] - want["kl"], 1e-3):
            hint = " — the loss is recon − kl: the −ELBO is the reconstruction term *plus* the KL"
        elif _close(got["recon"], want["recon"] / x[0].numel(), 1e-3):
            hint = (" — the reconstruction term is averaged over the pixels too: sum it over each image's 784 "
                    "pixels, mean over the batch")
        elif k in ("loss", "recon") and _close(got["kl"], want["kl"]):
            hint = (" — the KL is right, the reconstruction is not: estimate it at z = μ + σ ⊙ eps with the eps "
                    "passed in (model(x) draws noise of its own)")
        raise AssertionError(
            f"{call} returned {k} = {got[k]:.5f}, expected {want[k]:.5f} (the batch's terms before the step: "
            f"loss {want['loss']:.4f} = recon {want['recon']:.4f} + kl {want['kl']:.4f}; yours "
            f"{got['loss']:.4f}, {got['recon']:.4f}, {got['kl']:.4f}){hint}")

    def one_gradient_step_on_the_negative_elbo(fn):
        model, x, eps = _probe(seed + 1)
        before, start = copy.deepcopy(model), _flat(model)
        expected = _reference_steps(model, [(x, eps)], lr) - start
        fn(model, torch.optim.SGD(model.parameters(), lr=lr), x, eps)
        moved = _flat(model) - start
        if _moved_as(moved, expected):
            return
        size, want_size = float(moved.norm()), float(expected.norm())
        hint = ""
        if size == 0:
            hint = (" — the parameters did not change: call optimizer.step() after loss.backward() (and clear the "
                    "gradients before backward, not between backward and step)")
        else:
            for mistake in ("kl only", "recon only", "at mu", "uphill", "sum", "kl subtracted", "pixel mean"):
                if _moved_as(moved, _reference_steps(before, [(x, eps)], lr, mistake) - start):
                    hint = " — " + _STEP_HINTS[mistake]
                    break
            else:
                if float(F.cosine_similarity(moved, expected, dim=0)) < 0:
                    hint = " — " + _STEP_HINTS["uphill"]
                else:
                    hint = (" — if the answer draws noise of its own (model(x), torch.randn), use the eps passed in: "
                            "z = μ + σ ⊙ eps")
        raise AssertionError(
            f"after {call} the parameters moved by {size:.4g} (norm of the change), expected one step of gradient "
            f"descent on the batch's −ELBO (recon + kl, mean over the images, at z = μ + σ ⊙ eps), a change of norm "
            f"{want_size:.4g}{hint}")

    def no_gradient_carried_over(fn, steps: int = 3):
        model, _, _ = _probe(seed + 2)
        batches = [_probe(seed + 10 + i)[1:] for i in range(steps)]
        start = _flat(model)
        twin = copy.deepcopy(model)
        opt_twin = torch.optim.SGD(twin.parameters(), lr=lr)
        losses = [vae.train_step(twin, opt_twin, x, eps)["loss"] for x, eps in batches]
        expected = _flat(twin) - start
        stale = _reference_steps(model, batches, lr, accumulate=True) - start      # no zero_grad between the steps
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        got = [_as_parts(fn(model, opt, x, eps), call)["loss"] for x, eps in batches]
        moved = _flat(model) - start
        if _moved_as(moved, expected):
            return
        hint = ("the single step is wrong too: see the check of one step" if not _moved_as(moved, stale) else
                "the gradients of the earlier batches are still in .grad: backward() adds to them, so call "
                "optimizer.zero_grad() before loss.backward() in every step")
        raise AssertionError(
            f"{steps} calls of {call} on {steps} batches in a row moved the parameters by {float(moved.norm()):.4g}, "
            f"expected {float(expected.norm()):.4g} ({steps} steps of gradient descent, losses {_fmt(losses)}; yours "
            f"returned {_fmt(got)}) — {hint}")

    return [_one_thread(p) for p in (returns_the_elbo_terms_before_the_step, one_gradient_step_on_the_negative_elbo,
                                     no_gradient_carried_over)]


# --------------------------------------------------------------------------- KL per dimension, active units
def _codes(label: str, mu: torch.Tensor, logvar: torch.Tensor, threshold: float = 0.01):
    return label, mu, logvar, threshold


def usage_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """(label, mu, logvar, threshold): hand-made codes whose mistakes give different counts, random codes with
    collapsed dimensions, and (hidden) the codes of the shipped plain-ELBO PixelVAE on 500 test images."""
    # Six dimensions over 4 images, each usual mistake counting a different number of them as active:
    # z1 and z2 move with the image (z2 around a mean of 0.5), z3 to z5 move by ±0.05 or ±0.08 only (with
    # posterior variances 0.5, 1, 1), z6 sits exactly at the prior (μ = 0, σ² = 1).
    mu = torch.tensor([[1.0, 1.5, 0.05, 0.05, 0.08, 0.0], [-1.0, -0.5, -0.05, -0.05, -0.08, 0.0],
                       [2.0, 2.5, 0.05, 0.05, 0.08, 0.0], [-2.0, -1.5, -0.05, -0.05, -0.08, 0.0]])
    logvar = torch.log(torch.tensor([[0.1, 0.1, 0.5, 1.0, 1.0, 1.0]])).expand(4, 6).clone()
    items = [_codes("4 images, 6 dimensions: z1, z2 move with the image, z3-z5 by ±0.05 or ±0.08, z6 is at the prior",
                    mu, logvar),
             _codes("the same codes with threshold=0.0: a mean that never moves (z6) is not active "
                    "(activity strictly above the threshold)", mu, logvar, 0.0)]
    g = torch.Generator().manual_seed(13 if hidden else 3)
    n, d, used = (300, 16, 5) if hidden else (200, 8, 3)
    mu_r = torch.cat([torch.randn(n, used, generator=g) * 1.5 + 0.3,
                      0.02 * torch.randn(n, d - used, generator=g) + 0.05], 1)
    logvar_r = torch.cat([torch.rand(n, used, generator=g) * 2 - 4, 0.05 * torch.randn(n, d - used, generator=g)], 1)
    items.append(_codes(f"{n} images, {d} dimensions of which {used} carry information", mu_r, logvar_r))
    if hidden:
        from ..checkpoints import pretrained

        x, _ = data.tensors("test", "binary")
        mu_s, logvar_s = vae.encode_dataset(pretrained("pixelvae_no_free_bits"), x[:500])
        items.append(_codes("the shipped plain-ELBO PixelVAE's codes of 500 test images", mu_s, logvar_s))
        items.append(_codes("the same codes, threshold=0.1", mu_s, logvar_s, 0.1))
    return items


def _usage_mistakes(mu: torch.Tensor, logvar: torch.Tensor, threshold: float) -> list[tuple[str, dict]]:
    m, lv = mu.double(), logvar.double()
    kl_nd = 0.5 * (m.pow(2) + lv.exp() - 1.0 - lv)
    kl = kl_nd.mean(0)
    activity = m.var(0)
    return [
        ("the KL is summed over the images: average it over them (nats per dimension per image)",
         {"kl": kl_nd.sum(0)}),
        ("the activity is the variance of the posterior, E_x[σ²_j]: it is the variance over the images of the mean μ_j "
         "(how far the code's mean moves with the image)", {"activity": lv.exp().mean(0)}),
        ("the activity uses the biased variance (unbiased=False): use torch's default, the unbiased one",
         {"activity": m.var(0, unbiased=False)}),
        ("the activity is the mean of μ_j over the images: it is the variance of μ_j over the images",
         {"activity": m.mean(0)}),
        ("the activity is the mean of |μ_j|: it is the variance of μ_j over the images", {"activity": m.abs().mean(0)}),
        ("the activity is the variance along the wrong axis: over the images (axis 0), one value per dimension",
         {"activity": m.var(1)}),
        ("active counts the dimensions whose mean μ_j is above the threshold: count those whose *variance* "
         "over the images is", {"active": int((m.mean(0) > threshold).sum())}),
        ("active counts the dimensions whose mean |μ_j| is above the threshold: count those whose *variance* "
         "over the images is", {"active": int((m.abs().mean(0) > threshold).sum())}),
        ("active counts the dimensions whose posterior variance σ²_j is above the threshold: count those whose "
         "mean μ_j varies over the images by more", {"active": int((lv.exp().mean(0) > threshold).sum())}),
        ("active counts the dimensions whose KL is above the threshold: the notebook's definition is the activity, "
         "Var_x(E_q[z_j]) > threshold", {"active": int((kl > threshold).sum())}),
        ("active counts activity >= threshold: a dimension is active when its activity is strictly above it",
         {"active": int((activity >= threshold).sum())}),
        ("active counts the inactive dimensions", {"active": int((activity <= threshold).sum())}),
    ]


def _usage_property(label: str, mu: torch.Tensor, logvar: torch.Tensor, threshold: float) -> Property:
    n, d = mu.shape
    call = f"latent_usage(mu (shape {tuple(mu.shape)}), logvar (shape {tuple(logvar.shape)}), threshold={threshold})"

    def usage_on(fn):
        want = vae.latent_usage_from_codes(mu, logvar, threshold)
        out = fn(mu.clone(), logvar.clone(), threshold)
        assert isinstance(out, dict) and {"kl", "activity", "active"} <= set(out), (
            f"{label}: {call} should return a dict with the keys 'kl', 'activity' and 'active', got "
            + (f"a dict with keys {sorted(out)}" if isinstance(out, dict) else type(out).__name__))
        mistakes = _usage_mistakes(mu, logvar, threshold)
        for key in ("kl", "activity"):
            got = out[key]
            assert isinstance(got, torch.Tensor), f"{label}: {call}[{key!r}] should be a tensor, got {type(got).__name__}"
            if tuple(got.shape) != (d,):
                hint = ""
                if key == "kl" and got.numel() == 1:
                    hint = " — that is one number: the KL is summed over the dimensions; keep one value per dimension"
                elif key == "kl" and tuple(got.shape) == (n,):
                    hint = (" — that is one KL per image (summed over the dimensions): keep one value per dimension, "
                            "averaged over the images")
                elif key == "activity" and tuple(got.shape) == (n,):
                    hint = " — that is one value per image: the variance is over the images (axis 0)"
                raise AssertionError(f"{label}: {call}[{key!r}] has shape {tuple(got.shape)}, expected ({d},): one value "
                                     f"per latent dimension{hint}")
            g = got.detach().double()
            if not torch.allclose(g, want[key], rtol=1e-4, atol=1e-6):
                hint = next((h for h, wrong in mistakes if key in wrong and wrong[key].shape == g.shape
                             and torch.allclose(g, wrong[key], rtol=1e-4, atol=1e-6)), "")
                j = int((g - want[key]).abs().argmax())
                raise AssertionError(
                    f"{label}: {call}[{key!r}] is {_fmt(g)}, expected {_fmt(want[key])} (dimension {j}: expected "
                    f"{float(want[key][j]):.5g}, got {float(g[j]):.5g})" + (f" — {hint}" if hint else ""))
        got = out["active"]
        try:
            count = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise AssertionError(f"{label}: {call}['active'] should be a number of dimensions (an int), got "
                                 f"{type(got).__name__}") from None
        if count != want["active"]:
            hints = [h for h, wrong in mistakes if "active" in wrong and wrong["active"] == count]
            hint = (f" — {hints[0]}" if len(hints) == 1 else
                    " — that count is what each of these usual mistakes gives: " + "; or ".join(hints) if hints else "")
            raise AssertionError(
                f"{label}: {call}['active'] is {count:g}, expected {want['active']} of {d} dimensions (activity "
                f"{_fmt(want['activity'], limit=8)}){hint}")

    usage_on.__name__ = f"usage_on({label})"
    return usage_on


def latent_usage_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``latent_usage(mu, logvar, threshold)`` (for :func:`lecture13.exercises.check`)."""
    return [_usage_property(*item) for item in usage_inputs(hidden)]
