"""Toy distributions with known densities and known modes, for the VAE and GAN notebooks.

* :class:`Mixture1D`  a 1-D mixture of Gaussians whose density is exact, so a discriminator
  can be compared with the optimal D*(x) = p_data(x) / (p_data(x) + p_g(x)).
* :func:`ring_of_gaussians` / :func:`grid_of_gaussians`  2-D mixtures whose mode centres are
  known, so mode coverage can be counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Mixture1D:
    """p(x) = sum_k w_k N(x; mu_k, sigma_k^2)."""

    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self):
        if not (len(self.means) == len(self.stds) == len(self.weights)):
            raise ValueError("means, stds and weights must have the same length")
        if abs(sum(self.weights) - 1.0) > 1e-6 or min(self.weights) < 0:
            raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights}")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x), elementwise, computed with logsumexp over components."""
        x = torch.as_tensor(x, dtype=torch.float32).unsqueeze(-1)
        mu, sd, w = (torch.tensor(v, dtype=torch.float32) for v in (self.means, self.stds, self.weights))
        log_normal = -0.5 * ((x - mu) / sd) ** 2 - torch.log(sd) - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_normal + torch.log(w), dim=-1)

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x).exp()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of shape (n, 1)."""
        component = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        mu = torch.tensor(self.means)[component]
        sd = torch.tensor(self.stds)[component]
        return (mu + sd * torch.randn(n, generator=generator)).unsqueeze(1)


@dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of isotropic 2-D Gaussians with known centres."""

    centres: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.randint(len(self.centres), (n,), generator=generator)
        return self.centres[k] + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x, self.centres) ** 2
        log_normal = -0.5 * d2 / self.std ** 2 - math.log(2 * math.pi * self.std ** 2)
        return torch.logsumexp(log_normal, dim=1) - math.log(len(self.centres))


def ring_of_gaussians(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture2D:
    """``modes`` Gaussians evenly spaced on a circle (the classic mode-collapse benchmark)."""
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    return Mixture2D(torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1), std)


def grid_of_gaussians(side: int = 5, spacing: float = 1.0, std: float = 0.05) -> Mixture2D:
    """A side x side grid of Gaussians centred on the origin."""
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return Mixture2D(torch.stack([gx.flatten(), gy.flatten()], dim=1), std)


def mode_coverage(samples: torch.Tensor, mixture: Mixture2D, n_std: float = 3.0,
                  min_count: int | None = None) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples).

    A sample is high quality when it lies within ``n_std`` standard deviations of its nearest
    centre; a mode is covered when at least ``min_count`` high-quality samples (default: 1% of
    what a uniform share would be, at least 1) fall to it.
    """
    d = torch.cdist(samples.float(), mixture.centres)
    nearest_dist, nearest = d.min(dim=1)
    good = nearest_dist <= n_std * mixture.std
    counts = torch.bincount(nearest[good], minlength=len(mixture.centres))
    if min_count is None:
        min_count = max(1, int(0.01 * len(samples) / len(mixture.centres)))
    return int((counts >= min_count).sum()), float(good.float().mean())
