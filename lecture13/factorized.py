"""The simplest explicit density model: every pixel an independent Bernoulli.

    p(x) = Π_i θ_i^{x_i} (1 − θ_i)^{1 − x_i}

Maximum likelihood has a closed form, θ_i = mean of pixel i over the training set. A pixel that
is never on in training would get θ_i = 0 and any test image with that pixel on would get
probability 0 (an infinite NLL), so we add ``alpha`` pseudo-counts (Laplace smoothing):

    θ_i = (Σ_n x_i^(n) + α) / (N + 2α).

Its NLL is the baseline every later model in the course must beat: the model ignores every
dependency between pixels, which is all the structure an image has.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .checkpoints import register_model
from .data import tensors
from .interface import GenerativeModel, likelihood_report, mean_nll
from .likelihood import bernoulli_log_likelihood, bits_per_dim
from .recipes import Recipe, register_recipe
from .training import History


def fit_bernoulli(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Smoothed maximum-likelihood θ for binary images ``x`` (N, ...): shape x.shape[1:]."""
    return (x.sum(dim=0) + alpha) / (x.shape[0] + 2 * alpha)


def bernoulli_nll(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x) in nats for each image of ``x`` (N, ...) under independent Bernoullis θ."""
    theta = theta.clamp(1e-7, 1 - 1e-7)
    log_p = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)
    return -log_p.flatten(1).sum(dim=1)


def sample_factorized(theta: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` binary images (float 0/1, shape (n, *theta.shape)) drawn from independent Bernoullis θ,
    with the randomness of ``torch.Generator().manual_seed(seed)``: the same seed, the same images."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.bernoulli(theta.expand(n, *theta.shape), generator=generator)


def choose_alpha(x_train: torch.Tensor, x_val: torch.Tensor, alphas) -> tuple[float, torch.Tensor]:
    """The smoothing α with the lowest mean validation NLL: fit θ on ``x_train`` for every α of
    ``alphas``, score ``x_val``. Returns (best α, the mean validation NLLs in nats per image, (len(alphas),))."""
    nlls = torch.stack([bernoulli_nll(fit_bernoulli(x_train, float(a)), x_val).mean() for a in alphas])
    return float(alphas[int(nlls.argmin())]), nlls


@register_model
class FactorizedBernoulli(GenerativeModel):
    """p(x) = Π_i Bernoulli(x_i; σ(l_i)), one free logit l_i per pixel."""

    family = "baseline: independent pixels"
    likelihood_kind = "exact"

    def __init__(self, shape: tuple[int, ...] | list[int] = (1, 28, 28)):
        super().__init__()
        self.config = {"shape": list(shape)}
        self.logits = nn.Parameter(torch.zeros(*shape))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, alpha: float = 1.0) -> "FactorizedBernoulli":
        """Set θ to its smoothed maximum-likelihood value (no gradient steps needed)."""
        theta = fit_bernoulli(x, alpha)
        self.logits.copy_(torch.logit(theta))
        return self

    @property
    def theta(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per image."""
        return bernoulli_log_likelihood(self.logits.expand_as(x), x)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """−log p(x) in nats per image."""
        return -self.log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        theta = self.theta.expand(n, *self.theta.shape)
        return torch.bernoulli(theta, generator=generator)

    # the interface (lecture13.interface): binary samples, an exact likelihood, no latent space
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample(n, generator)

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        return likelihood_report("exact", mean_nll(self, x))


# --------------------------------------------------------------------------- recipe
def _fit(model: FactorizedBernoulli, options: dict) -> History:
    started = time.perf_counter()
    x, _ = tensors("train", "binary", subset=options.get("subset", "embedded"))
    model.fit(x, alpha=options.get("alpha", 1.0))
    with torch.no_grad():
        nll = float(model.nll(x).mean())
    return History(steps=[{"step": 1, "epoch": 0, "loss": nll}], epochs=[{"epoch": 0, "loss": nll}],
                   seconds=time.perf_counter() - started)


@torch.no_grad()
def _evaluate(model: FactorizedBernoulli, subset: str) -> dict[str, float]:
    x, _ = tensors("test", "binary", subset=subset)
    nll = float(model.nll(x).double().mean())
    return {"nll_nats": nll, "bits_per_dim": bits_per_dim(nll)}


register_recipe(Recipe(
    name="factorized",
    description="independent Bernoulli per pixel, closed-form maximum likelihood (alpha=1 smoothing)",
    build=lambda **kw: FactorizedBernoulli(**kw),
    fit=_fit,
    evaluate=_evaluate,
    sample=lambda model, n, seed: model.sample(n, torch.Generator().manual_seed(seed)),
    defaults={"epochs": 1, "alpha": 1.0},
))
