"""The ELBO checked against exact answers on the linear-Gaussian model z ~ N(0, I), x|z ~ N(Wz + b, σ²I)."""
import math

import pytest
import torch

from lecture13 import vae
from lecture13.linear_gaussian import LinearGaussian, kl_gaussians


@pytest.fixture(scope="module")
def model():
    return LinearGaussian.random(data_dim=6, latent_dim=3, sigma=0.7, seed=0)


@pytest.fixture(scope="module")
def x(model):
    return model.sample(5, torch.Generator().manual_seed(1))[0]


def random_q(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(d, generator=g, dtype=torch.float64) + 0.1


def test_log_px_is_the_marginal_of_the_joint(model):
    # log p(x) = log ∫ p(z) p(x|z) dz, by brute-force Monte Carlo over the prior on one point
    x0 = model.sample(1, torch.Generator().manual_seed(5))[0]
    z = torch.randn(200_000, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    mc = torch.logsumexp(model.log_px_given_z(x0, z), 0) - math.log(len(z))
    assert abs(mc.item() - model.log_px(x0).item()) < 0.05


def test_posterior_matches_gaussian_conditioning(model, x):
    # independent formula: E[z|x] = Wᵀ C⁻¹ (x − b), Cov[z|x] = I − Wᵀ C⁻¹ W with C = WWᵀ + σ²I
    C_inv = torch.linalg.inv(model.marginal_covariance())
    m, S = model.posterior(x)
    assert torch.allclose(m, (x - model.b) @ C_inv @ model.W, atol=1e-10)
    assert torch.allclose(S, torch.eye(3, dtype=torch.float64) - model.W.T @ C_inv @ model.W, atol=1e-10)


def test_log_px_equals_elbo_plus_kl_to_the_posterior(model, x):
    for seed in range(5):
        mu, var = random_q(3, len(x), seed)
        identity = model.elbo(x, mu, var) + model.kl_to_posterior(x, mu, var)
        assert torch.allclose(identity, model.log_px(x), atol=1e-9)
        assert (model.elbo(x, mu, var) < model.log_px(x)).all()            # strictly below for q ≠ posterior


def test_elbo_equals_log_px_at_the_true_posterior(model, x):
    m, S = model.posterior(x)
    assert torch.allclose(model.elbo(x, m, S), model.log_px(x), atol=1e-9)
    assert model.kl_to_posterior(x, m, S).abs().max() < 1e-9
    # and the IW bound is then exact for every K: each weight p(x, z)/q(z) equals p(x)
    assert torch.allclose(model.iw_bound(x, m, S, k=3, generator=torch.Generator().manual_seed(0)), model.log_px(x), atol=1e-9)


def test_closed_form_elbo_matches_its_monte_carlo_estimate(model, x):
    mu, var = random_q(3, len(x), 7)
    log_w = model.log_weights(x, mu, var, 100_000, torch.Generator().manual_seed(0))
    stderr = log_w.std(0) / math.sqrt(len(log_w))
    assert ((log_w.mean(0) - model.elbo(x, mu, var)).abs() < 4 * stderr).all()


def test_elbo_below_iw_bound_below_log_px_and_iw_rises_with_k(model, x):
    m, S = model.posterior(x)
    mu, var = m + 0.3, 1.5 * torch.diagonal(S)                 # a diagonal q near the posterior, not on it
    elbo, log_px = model.elbo(x, mu, var), model.log_px(x)
    runs = {k: torch.stack([model.iw_bound(x, mu, var, k, torch.Generator().manual_seed(s)) for s in range(300)])
            for k in (1, 10, 100)}
    mean = {k: r.mean(0) for k, r in runs.items()}
    stderr = {k: r.std(0) / math.sqrt(len(r)) for k, r in runs.items()}
    assert ((mean[1] - elbo).abs() < 4 * stderr[1]).all()                  # L_1 is the ELBO in expectation
    assert (elbo + 4 * stderr[10] < mean[10]).all() and (mean[10] + 4 * stderr[100] < mean[100]).all()
    assert (mean[100] < log_px).all()


def test_kl_gaussians_reduces_to_the_diagonal_formula():
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    full = kl_gaussians(mu, torch.diag(logvar.exp()), torch.zeros_like(mu), torch.eye(3, dtype=torch.float64))
    assert torch.allclose(full, vae.gaussian_kl(mu, logvar.expand_as(mu)), atol=1e-12)


def test_reparameterized_gradient_matches_the_analytic_gradient(model, x):
    # ∇_μ E_q[log p(x|z)] = Wᵀ (x − Wμ − b) / σ²  (the trace term does not depend on μ)
    x0 = x[0]
    mu, logvar = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64), torch.tensor([-1.0, 0.0, -0.5], dtype=torch.float64)
    analytic = model.W.T @ (x0 - model.W @ mu - model.b) / model.sigma ** 2
    f = lambda z: model.log_px_given_z(x0, z)
    grads = vae.reparameterized_gradients(f, mu, logvar, 20_000, torch.Generator().manual_seed(0))
    stderr = grads.std(0) / math.sqrt(len(grads))
    assert ((grads.mean(0) - analytic).abs() < 4 * stderr + 1e-9).all()
    # the closed-form ELBO differentiated by autograd gives the same gradient
    mu_var = mu.clone().requires_grad_(True)
    model.expected_log_likelihood(x0[None], mu_var[None], logvar.exp()).sum().backward()
    assert torch.allclose(mu_var.grad, analytic, atol=1e-10)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(torch.zeros(3, 2), torch.zeros(3), sigma=0.0)
    with pytest.raises(ValueError, match=r"\(D, d\)"):
        LinearGaussian(torch.zeros(3, 2), torch.zeros(4), sigma=1.0)
    m = LinearGaussian.random(4, 2)
    with pytest.raises(ValueError, match="covariance"):
        m.elbo(torch.zeros(1, 4), torch.zeros(1, 2), torch.eye(3))
