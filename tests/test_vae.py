"""The VAE's pieces (reparameterization, KL, negative ELBO, importance-weighted bound) and the model."""
import math

import pytest
import torch
import torch.nn.functional as F

from lecture13 import vae
from lecture13.data import tensors
from lecture13.likelihood import bernoulli_log_likelihood
from lecture13.training import train


def test_reparameterize_is_mu_plus_sigma_eps_and_differentiable():
    mu = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]], requires_grad=True)
    eps = torch.tensor([[1.0, -0.5, 2.0]])
    z = vae.reparameterize(mu, logvar, eps)
    assert torch.allclose(z, torch.tensor([[1.5, -2.0, 3.0]]))            # σ = 1, 2, 0.5
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(1, 3))                      # ∂z/∂μ = 1
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # ∂z/∂logσ² = ½σε


def test_reparameterize_draws_from_the_right_gaussian():
    mu, logvar = torch.full((200_000, 1), 3.0), torch.full((200_000, 1), math.log(0.25))
    z = vae.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert z.dtype == torch.float32 and z.shape == mu.shape
    assert abs(z.mean().item() - 3.0) < 0.01 and abs(z.std().item() - 0.5) < 0.01


def test_reparameterize_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        vae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))


def test_gaussian_kl_matches_torch_and_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    kl = vae.gaussian_kl(mu, logvar)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert kl.shape == (4,)
    assert torch.allclose(kl, torch.distributions.kl_divergence(q, p).sum(-1), atol=1e-12)
    z = q.sample((200_000,))                                              # MC: E_q[log q − log p]
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    stderr = mc.std(0) / math.sqrt(len(mc))
    assert ((mc.mean(0) - kl).abs() < 4 * stderr + 1e-3).all()


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert vae.gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max() == 0
    assert (vae.gaussian_kl(torch.randn(100, 5), torch.randn(100, 5)) > 0).all()


def test_negative_elbo_is_reconstruction_plus_kl():
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3), generator=g)
    logits, mu, logvar = torch.randn(3, 1, 28, 28, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    out = vae.negative_elbo(x, logits, mu, logvar)
    assert set(out) == {"loss", "recon", "kl"} and all(v.dim() == 0 for v in out.values())
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 3     # summed over pixels
    assert torch.isclose(out["recon"], recon)
    assert torch.isclose(out["kl"], vae.gaussian_kl(mu, logvar).mean())
    assert torch.isclose(out["loss"], out["recon"] + out["kl"])


def test_iw_bound_is_a_stable_log_mean_exp():
    log_w = torch.tensor([[-500.0, -800.0], [-501.0, -799.0], [-502.0, -801.0]])   # (K=3, N=2)
    expected = torch.log(torch.exp(log_w.double() + 500).mean(0)) - 500           # shifted by hand
    bound = vae.iw_bound(log_w, torch.zeros_like(log_w), torch.zeros_like(log_w))
    assert torch.isfinite(bound).all() and torch.allclose(bound.double(), expected, atol=1e-5)
    # the pieces enter as log p(x|z) + log p(z) − log q(z|x)
    assert torch.allclose(vae.iw_bound(log_w[:1], torch.ones(1, 2), torch.full((1, 2), 3.0)), log_w[0] - 2)


# --------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def small_batch():
    x, _ = tensors("test", "binary", limit=8)
    return x


@pytest.mark.parametrize("latent_dim", [2, 16])
def test_vae_shapes_and_dtypes(small_batch, latent_dim):
    model = vae.VAE(latent_dim=latent_dim, channels=8, hidden=64)
    mu, logvar = model.encode(small_batch)
    assert mu.shape == logvar.shape == (8, latent_dim) and mu.dtype == torch.float32
    logits, mu2, _ = model(small_batch)
    assert logits.shape == small_batch.shape and logits.dtype == torch.float32
    assert model.decode(torch.zeros(5, 3, latent_dim)).shape == (5, 3, 1, 28, 28)     # any leading axes
    samples = model.sample(6, torch.Generator().manual_seed(0))
    assert samples.shape == (6, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1


def test_vae_explains_bad_input():
    model = vae.VAE(latent_dim=2, channels=8, hidden=32)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.encode(torch.zeros(4, 28, 28))
    with pytest.raises(ValueError, match="float"):
        model.encode(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="2 numbers"):
        model.decode(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        vae.VAE(latent_dim=0)


def test_iw_log_likelihood_does_not_depend_on_the_chunk_size(small_batch):
    model = vae.VAE(latent_dim=4, channels=8, hidden=64)
    a = vae.iw_log_likelihood(model, small_batch, k=50, generator=torch.Generator().manual_seed(3), chunk=7)
    b = vae.iw_log_likelihood(model, small_batch, k=50, generator=torch.Generator().manual_seed(3), chunk=50)
    assert a.shape == (8,) and torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="k must be"):
        vae.iw_log_likelihood(model, small_batch, k=0)


def test_iw_bound_of_a_vae_is_above_its_elbo(small_batch):
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=4, channels=8, hidden=64)
    elbo = vae.elbo(model, small_batch, torch.Generator().manual_seed(0)).mean()
    iw = vae.iw_log_likelihood(model, small_batch, k=100, generator=torch.Generator().manual_seed(0)).mean()
    assert iw > elbo


def test_training_lowers_the_negative_elbo():
    x, _ = tensors("train", "binary", limit=512)
    torch.manual_seed(0)
    model = vae.VAE(latent_dim=8, channels=8, hidden=128)
    history = train(model, list(x.split(64)), vae.vae_loss, epochs=4, lr=2e-3, progress=False, device="cpu")
    losses = history.series("loss")
    assert {"loss", "recon", "kl"} <= set(history.keys())
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 50


def test_gradient_estimators_agree_in_mean_but_not_in_variance():
    f = lambda z: -(z - 2.0).pow(2).sum(-1)                   # E[f] = −Σ[(μ−2)² + σ²], ∇_μ = −2(μ − 2)
    mu, logvar = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.0, -1.0], dtype=torch.float64)
    analytic = -2 * (mu - 2.0)
    rep = vae.reparameterized_gradients(f, mu, logvar, 20_000, torch.Generator().manual_seed(0))
    sf = vae.score_function_gradients(f, mu, logvar, 20_000, torch.Generator().manual_seed(1))
    assert rep.shape == sf.shape == (20_000, 2)
    assert torch.allclose(rep.mean(0), analytic, atol=4 * (rep.std(0) / math.sqrt(20_000)).max().item())
    assert torch.allclose(sf.mean(0), analytic, atol=4 * (sf.std(0) / math.sqrt(20_000)).max().item())
    assert (sf.var(0) > 5 * rep.var(0)).all()


def test_iw_log_likelihood_matches_the_formula_term_by_term(small_batch):
    torch.manual_seed(1)
    model = vae.VAE(latent_dim=3, channels=8, hidden=32)
    k = 20
    got = vae.iw_log_likelihood(model, small_batch, k=k, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():                                   # the same noise, drawn the same way, by hand
        mu, logvar = model.encode(small_batch)
        eps = torch.randn((k, *mu.shape), generator=torch.Generator().manual_seed(9))
        z = mu + torch.exp(0.5 * logvar) * eps
        log_px_z = torch.stack([-F.binary_cross_entropy_with_logits(model.decode(z[i]), small_batch, reduction="none")
                                .flatten(1).sum(1) for i in range(k)])
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        expected = torch.log(torch.exp((log_px_z + prior - q).double() - (log_px_z + prior - q).double().max(0).values).mean(0)) \
            + (log_px_z + prior - q).double().max(0).values
    assert torch.allclose(got.double(), expected, atol=1e-3)


# --------------------------------------------------------------------------- the PixelVAE (local autoregressive decoder)
def _pixelvae(seed=0, kernel_size=5):
    torch.manual_seed(seed)
    model = vae.PixelVAE(latent_dim=4, channels=8, hidden=32, context_channels=6, kernel_size=kernel_size)
    with torch.no_grad():
        model.decoder.out_weight.normal_()   # starts at zero (the plain VAE); make the context matter
    return model.eval()


@pytest.mark.parametrize("r,c", [(0, 0), (10, 10), (27, 27)])
def test_pixelvae_logits_depend_only_on_earlier_pixels(small_batch, r, c):
    """Flipping pixel (r, c) may change the logits of later pixels within the window, never of (r, c) or earlier."""
    model = _pixelvae(kernel_size=5)
    z = torch.randn(8, 4)
    flipped = small_batch.clone()
    flipped[:, 0, r, c] = 1 - flipped[:, 0, r, c]
    changed = (model.decode(z, small_batch) - model.decode(z, flipped)).abs().amax(dim=(0, 1)) > 0   # (28, 28)
    order = torch.arange(28 * 28).view(28, 28)
    assert not changed[order <= order[r, c]].any()
    if (r, c) != (27, 27):
        assert changed.any()                                     # the context really is used
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert (rows - r).abs().max() <= 2 and (cols - c).abs().max() <= 2   # only inside the 5×5 window


def test_pixelvae_sampler_follows_its_own_conditionals():
    """The sequential sampler and the parallel pass agree: pixel i is 1 exactly when u_i < σ(l_i(x_<i, z))."""
    model = _pixelvae(seed=1)
    samples = model.sample(5, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)                             # the same draws, in the same order
    z, u = torch.randn(5, 4, generator=g), torch.rand(5, 1, 28, 28, generator=g)
    assert samples.shape == (5, 1, 28, 28) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(samples, (u < torch.sigmoid(model.decode(z, samples))).float())


def test_pixelvae_starts_as_the_plain_vae_and_explains_misuse(small_batch):
    torch.manual_seed(0)
    model = vae.PixelVAE(latent_dim=4, channels=8, hidden=32)
    z = torch.randn(3, 8, 4)
    assert torch.equal(model.decode(z, small_batch), model.decoder.mlp(z))     # the context's output weight is 0
    with pytest.raises(ValueError, match="decode\\(z, x\\)"):
        model.decode(z)
    with pytest.raises(ValueError, match="no per-pixel probability"):
        model.sample(2, probabilities=True)
    with pytest.raises(ValueError, match="odd"):
        vae.PixelVAE(kernel_size=4)


def test_pixelvae_iw_bound_is_above_its_elbo_and_independent_of_the_chunk(small_batch):
    model = _pixelvae(seed=2)
    elbo = vae.elbo(model, small_batch, torch.Generator().manual_seed(0)).mean()
    a = vae.iw_log_likelihood(model, small_batch, k=60, generator=torch.Generator().manual_seed(3), chunk=7)
    b = vae.iw_log_likelihood(model, small_batch, k=60, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-3) and a.mean() > elbo


def test_free_bits_kl_floors_each_dimension_and_stops_its_gradient():
    mu = torch.tensor([[3.0, 0.1], [3.0, -0.1]], requires_grad=True)    # dim 0: KL 4.5, dim 1: KL 0.005
    logvar = torch.zeros(2, 2)
    loss = vae.free_bits_kl(mu, logvar, nats_per_dim=0.5)
    assert torch.isclose(loss, torch.tensor(4.5 + 0.5))
    loss.backward()
    assert (mu.grad[:, 0] != 0).all() and (mu.grad[:, 1] == 0).all()    # a dimension under λ is free
    # with λ = 0 it is the ordinary KL, averaged over the batch
    assert torch.isclose(vae.free_bits_kl(mu, logvar, 0.0), vae.gaussian_kl(mu, logvar).mean())


def test_free_bits_loss_reports_the_true_elbo_parts(small_batch):
    model = _pixelvae(seed=3)
    torch.manual_seed(0)
    out = vae.free_bits_loss(0.5)(model, small_batch)
    assert set(out) == {"loss", "recon", "kl"}
    assert out["loss"] >= out["recon"] + out["kl"] - 1e-4            # Σ_j max(λ, KL_j) ≥ Σ_j KL_j
    assert out["loss"] >= out["recon"] + 4 * 0.5 - 1e-4              # at least λ per latent dimension
    assert out["kl"] < 4 * 0.5                                         # an untrained encoder: the floor is what counts


def test_pixelvae_training_lowers_the_loss_and_uses_the_context():
    x, _ = tensors("train", "binary", limit=512)
    torch.manual_seed(0)
    model = vae.PixelVAE(latent_dim=8, channels=8, hidden=128, context_channels=8, kernel_size=5)
    history = train(model, list(x.split(64)), vae.free_bits_loss(0.25), epochs=4, lr=2e-3, progress=False, device="cpu")
    losses = history.series("loss")
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 50
    assert model.decoder.out_weight.abs().sum() > 0                    # the context's weight left zero


@pytest.mark.parametrize("make", [lambda: vae.VAE(latent_dim=4, channels=8, hidden=32), lambda: _pixelvae(seed=4)])
def test_pixel_nll_sums_to_the_reconstruction_term(small_batch, make):
    torch.manual_seed(0)
    model = make().eval()
    costs = vae.pixel_nll(model, small_batch, torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits, mu, logvar = model(small_batch, generator=torch.Generator().manual_seed(5))
    assert costs.shape == small_batch.shape and (costs >= 0).all()
    assert torch.allclose(costs.flatten(1).sum(1), -bernoulli_log_likelihood(logits, small_batch), atol=1e-3)


def test_a_baseline_keeps_the_score_function_unbiased_and_lowers_its_variance():
    p = vae.independent_pixels_problem(8)
    plain = vae.score_function_gradients(p["f"], p["mu"], p["logvar"], 20_000, torch.Generator().manual_seed(0))
    based = vae.score_function_gradients(p["f"], p["mu"], p["logvar"], 20_000, torch.Generator().manual_seed(0),
                                         baseline=p["mean_f"])
    se = based.std(0) / math.sqrt(20_000)
    assert ((based.mean(0) - p["gradient"]).abs() < 4.5 * se).all()
    assert (based.var(0) < plain.var(0)).all()


def test_the_independent_pixels_problem_is_nested_and_its_closed_forms_hold():
    small, large = vae.independent_pixels_problem(4), vae.independent_pixels_problem(16)
    assert torch.equal(small["mu"], large["mu"][:4]) and torch.equal(small["gradient"], large["gradient"][:4])
    z = vae.reparameterize(large["mu"].expand(50_000, 16), large["logvar"].expand(50_000, 16),
                           generator=torch.Generator().manual_seed(0))
    f = large["f"](z)
    assert float(f.mean()) == pytest.approx(float(large["mean_f"]), abs=4 * float(f.std()) / math.sqrt(50_000))
    with pytest.raises(ValueError, match="between 1 and"):
        vae.independent_pixels_problem(0)


def test_gradient_variances_has_one_value_per_dimension_and_seed():
    v = vae.gradient_variances((1, 4), n=500, seeds=range(3))
    assert set(v) == set(vae.ESTIMATORS) and all(t.shape == (2, 3) for t in v.values())
    assert torch.allclose(v["reparameterized"], torch.full((2, 3), 0.5, dtype=torch.float64), rtol=0.2)


def test_latent_usage_sums_to_the_kl_term_and_counts_dimensions_that_move_with_x(small_batch):
    model = vae.VAE(latent_dim=4).eval()
    usage = vae.latent_usage(model, small_batch, batch_size=3)
    with torch.no_grad():
        mu, logvar = model.encode(small_batch)
    assert float(usage["kl"].sum()) == pytest.approx(float(vae.gaussian_kl(mu, logvar).double().mean()), rel=1e-5)
    assert usage["active"] == int((mu.double().var(0) > 0.01).sum())
    assert vae.latent_usage(model, small_batch, threshold=1e9)["active"] == 0


def test_knn_accuracy_is_one_for_separated_classes_and_near_chance_for_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(25)
    separated = torch.randn(100, 2, generator=g) * 0.1 + 10 * torch.stack([labels, labels], 1).float()
    assert vae.knn_accuracy(separated, labels, k=5) == 1.0
    assert vae.knn_accuracy(torch.randn(100, 2, generator=g), labels, k=5) < 0.5
