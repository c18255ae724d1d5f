"""A latent-variable model where everything is closed form: the place to check the ELBO.

    z ~ N(0, I_d),     x | z ~ N(W z + b, σ² I_D)

Because everything is Gaussian and linear, the integral a VAE cannot compute is known:

    p(x)     = N(x; b, W Wᵀ + σ² I)                                  (marginal likelihood)
    p(z | x) = N(z; m(x), S),  S = (I + WᵀW / σ²)⁻¹,  m(x) = S Wᵀ (x − b) / σ²   (true posterior)

and for any Gaussian q(z) = N(μ, Σ) the ELBO has a closed form too:

    E_q[log p(x|z)] = −D/2 log 2πσ² − (‖x − Wμ − b‖² + tr(W Σ Wᵀ)) / 2σ²
    ELBO(q)         = E_q[log p(x|z)] − KL(q ‖ p(z))

so the decomposition log p(x) = ELBO(q) + KL(q ‖ p(z|x)) can be checked number by number.
All computations are in float64: the identity then holds to ~1e-10.
"""
from __future__ import annotations

import math

import torch

from .vae import gaussian_log_density

LOG_2PI = math.log(2 * math.pi)


def kl_gaussians(m1: torch.Tensor, cov1: torch.Tensor, m2: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """KL(N(m1, cov1) ‖ N(m2, cov2)) = ½ [tr(cov2⁻¹ cov1) + (m2−m1)ᵀ cov2⁻¹ (m2−m1) − d + log det cov2 − log det cov1].

    Means (..., d), covariances (d, d) (shared by the batch); one value per row of the means."""
    d = m1.shape[-1]
    inv2 = torch.linalg.inv(cov2)
    diff = m2 - m1
    return 0.5 * (torch.trace(inv2 @ cov1) + ((diff @ inv2) * diff).sum(-1) - d
                  + torch.logdet(cov2) - torch.logdet(cov1))


def as_covariance(cov_or_var: torch.Tensor, d: int) -> torch.Tensor:
    """A (d,) vector of variances becomes diag(vector); a (d, d) matrix is returned as it is."""
    if cov_or_var.dim() == 1:
        if cov_or_var.shape[0] != d:
            raise ValueError(f"expected {d} variances, got {cov_or_var.shape[0]}")
        return torch.diag(cov_or_var)
    if tuple(cov_or_var.shape) != (d, d):
        raise ValueError(f"expected a ({d}, {d}) covariance or {d} variances, got shape {tuple(cov_or_var.shape)}")
    return cov_or_var


class LinearGaussian:
    """z ~ N(0, I_d), x | z ~ N(W z + b, σ² I_D), with W (D, d) and b (D,), in float64."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, sigma: float):
        if W.dim() != 2 or b.shape != (W.shape[0],):
            raise ValueError(f"W must be (D, d) and b (D,), got {tuple(W.shape)} and {tuple(b.shape)}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.W, self.b, self.sigma = W.double(), b.double(), float(sigma)
        self.data_dim, self.latent_dim = W.shape

    @classmethod
    def random(cls, data_dim: int = 5, latent_dim: int = 2, sigma: float = 0.5, seed: int = 0) -> "LinearGaussian":
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64),
                   torch.randn(data_dim, generator=g, dtype=torch.float64), sigma)

    # --- the generative model
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, z): n draws of the latent and of the data."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.sigma * noise, z

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, σ² I), broadcasting over leading axes of z (e.g. K samples)."""
        return gaussian_log_density(x, z @ self.W.T + self.b, 2 * math.log(self.sigma))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(z)

    # --- what the VAE cannot compute, here in closed form
    def marginal_covariance(self) -> torch.Tensor:
        return self.W @ self.W.T + self.sigma ** 2 * torch.eye(self.data_dim, dtype=torch.float64)

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(x; b, W Wᵀ + σ² I), one value per row of x."""
        dist = torch.distributions.MultivariateNormal(self.b, covariance_matrix=self.marginal_covariance())
        return dist.log_prob(x.double())

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The true posterior p(z|x) = N(m(x), S): means (N, d) and the shared covariance S (d, d)."""
        eye = torch.eye(self.latent_dim, dtype=torch.float64)
        S = torch.linalg.inv(eye + self.W.T @ self.W / self.sigma ** 2)
        m = (x.double() - self.b) @ self.W @ S / self.sigma ** 2   # S symmetric: (S Wᵀ (x−b))ᵀ = (x−b)ᵀ W S
        return m, S

    # --- the ELBO and its pieces, for any Gaussian q(z) = N(mu, cov)
    def expected_log_likelihood(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """E_q[log p(x|z)] = −D/2 log 2πσ² − (‖x − Wμ − b‖² + tr(W Σ Wᵀ)) / 2σ²."""
        cov = as_covariance(cov, self.latent_dim)
        s2 = self.sigma ** 2
        residual = (x.double() - mu @ self.W.T - self.b).pow(2).sum(-1)
        return -0.5 * self.data_dim * (LOG_2PI + math.log(s2)) - (residual + torch.trace(self.W @ cov @ self.W.T)) / (2 * s2)

    def kl_to_prior(self, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        cov = as_covariance(cov, self.latent_dim)
        eye = torch.eye(self.latent_dim, dtype=torch.float64)
        return kl_gaussians(mu, cov, torch.zeros_like(mu), eye)

    def elbo(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """ELBO(q) = E_q[log p(x|z)] − KL(q ‖ p(z)), exactly."""
        return self.expected_log_likelihood(x, mu, cov) - self.kl_to_prior(mu, cov)

    def kl_to_posterior(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """KL(q ‖ p(z|x)): the gap log p(x) − ELBO(q)."""
        m, S = self.posterior(x)
        return kl_gaussians(mu, as_covariance(cov, self.latent_dim), m, S)

    # --- Monte Carlo estimates (what a VAE does, since it has no closed form)
    def log_weights(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor, k: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x, z_k) − log q(z_k) for K samples z_k ~ q: shape (K, N)."""
        cov = as_covariance(cov, self.latent_dim)
        L = torch.linalg.cholesky(cov)
        eps = torch.randn(k, *mu.shape, generator=generator, dtype=torch.float64)
        z = mu + eps @ L.T                                              # reparameterized, full covariance
        q = torch.distributions.MultivariateNormal(mu, scale_tril=L)
        return self.log_px_given_z(x.double(), z) + self.log_prior(z) - q.log_prob(z)

    def elbo_mc(self, x, mu, cov, k: int = 1000, generator: torch.Generator | None = None) -> torch.Tensor:
        """Monte Carlo ELBO: the mean of K log weights."""
        return self.log_weights(x, mu, cov, k, generator).mean(0)

    def iw_bound(self, x, mu, cov, k: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_K = logsumexp_k log w_k − log K: between the ELBO (K = 1) and log p(x) (K → ∞)."""
        log_w = self.log_weights(x, mu, cov, k, generator)
        return torch.logsumexp(log_w, dim=0) - math.log(k)
