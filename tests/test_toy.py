import math

import torch

from lecture13 import toy


def test_mixture1d_density_integrates_to_one_and_samples_match():
    mix = toy.Mixture1D(means=(-2.0, 1.0), stds=(0.5, 1.0), weights=(0.3, 0.7))
    grid = torch.linspace(-10, 10, 20001)
    assert abs(torch.trapezoid(mix.density(grid), grid).item() - 1.0) < 1e-4
    x = mix.sample(100_000, torch.Generator().manual_seed(0))
    assert x.shape == (100_000, 1)
    assert abs(x.mean().item() - (0.3 * -2.0 + 0.7 * 1.0)) < 0.02


def test_ring_and_grid_coverage():
    ring = toy.ring_of_gaussians(8, radius=2.0, std=0.02)
    assert ring.centres.shape == (8, 2)
    assert torch.allclose(ring.centres.norm(dim=1), torch.full((8,), 2.0))
    covered, quality = toy.mode_coverage(ring.sample(4000, torch.Generator().manual_seed(0)), ring)
    assert covered == 8 and quality > 0.98
    collapsed = ring.centres[:1] + 0.01 * torch.randn(4000, 2)
    assert toy.mode_coverage(collapsed, ring)[0] == 1
    grid = toy.grid_of_gaussians(5)
    assert grid.centres.shape == (25, 2)
    assert abs(grid.log_prob(grid.centres[:1]).item() - (-math.log(2 * math.pi * 0.05 ** 2) - math.log(25))) < 1e-3


# --------------------------------------------------------------------------- mode shares and coverage
def test_mode_shares_and_coverage_measure_where_samples_are():
    ring = toy.ring_of_gaussians(8, radius=2.0, std=0.05)
    g = torch.Generator().manual_seed(0)
    data = ring.sample(4000, g)
    shares = toy.mode_shares(data, ring)
    assert shares.shape == (9,) and abs(float(shares.sum()) - 1) < 1e-6
    c = toy.coverage_from_shares(shares)
    assert c["modes"] == 8 and abs(float(c["quality"]) - (1 - math.exp(-4.5))) < 0.01 and c["effective"] > 7.9
    one = ring.centres[3] + 0.05 * torch.randn(1000, 2, generator=g)
    c = toy.coverage_from_shares(toy.mode_shares(one, ring))
    assert c["modes"] == 1 and abs(float(c["effective"]) - 1) < 1e-6
    # a thin spread of samples along the circle touches every mode but covers (almost) none
    angle = torch.rand(1000, generator=g) * 2 * math.pi
    circle = 2 * torch.stack([angle.cos(), angle.sin()], dim=1)
    shares = toy.mode_shares(circle, ring)
    assert int((shares[:-1] > 0).sum()) == 8 and toy.coverage_from_shares(shares)["modes"] <= 2
    # batched: (members, n, 2) gives one row per member
    assert toy.mode_shares(torch.stack([data[:1000], one]), ring).shape == (2, 9)
    assert abs(float(toy.spread(one)) - 0.05 * math.sqrt(math.pi)) < 0.01     # E|x − y| for σ = 0.05 in 2-D


def test_divergences_on_a_grid_match_closed_forms():
    x = torch.linspace(-15, 15, 3001, dtype=torch.float64)
    p = toy.normal_log_prob(x, torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    q = toy.normal_log_prob(x, torch.tensor(1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    d = toy.divergences(p, q, x)
    kl = math.log(2.0) + (1 + 1) / (2 * 4) - 0.5                      # KL(N(0,1) ‖ N(1, 2²))
    assert abs(float(d["kl_pq"]) - kl) < 1e-10
    assert float(toy.divergences(p, p, x)["jsd"]) < 1e-12 and 0 < float(d["jsd"]) < math.log(2)


# --------------------------------------------------------------------------- many toy GANs at once
def test_each_ensemble_member_is_exactly_the_single_gan_of_its_seed():
    """Member s starts as ToyGAN(seed s), computes what it computes, gets exactly its own gradient, and
    so takes exactly its optimizer step (Adam and SGD are elementwise)."""
    from lecture13 import gan

    ensemble = toy.ToyGANEnsemble([3, 7], data_dim=2, z_dim=2, hidden=16)
    torch.manual_seed(7)
    single = gan.ToyGAN(data_dim=2, z_dim=2, hidden=16)
    z = torch.randn(32, 2)
    z_both = torch.cat([torch.randn(32, 2), z], dim=1)                 # member 1 reads the second slice
    assert torch.allclose(ensemble.generator(z_both)[:, 1], single.generator(z), atol=1e-6)
    x = torch.randn(32, 2)
    opt_e, _ = gan.make_optimizers(ensemble, lr=1e-2)
    opt_s, _ = gan.make_optimizers(single, lr=1e-2)
    for _ in range(3):
        fake_e, fake_s = ensemble.generator(z_both).detach(), single.generator(z).detach()
        real_e = torch.stack([torch.randn(32, 2), x], dim=1)
        loss_e = gan.discriminator_loss(ensemble.discriminator(real_e), ensemble.discriminator(fake_e))
        loss_s = gan.discriminator_loss(single.discriminator(x), single.discriminator(fake_s))
        for opt, loss in ((opt_e, loss_e), (opt_s, loss_s)):
            opt.zero_grad(); loss.backward(); opt.step()
    first = [m for m in single.discriminator.net if isinstance(m, torch.nn.Linear)][0]
    assert torch.allclose(ensemble.discriminator.net.weights[0][1], first.weight.T, atol=1e-6)
    assert torch.allclose(ensemble.discriminator.net.biases[0][1, 0], first.bias, atol=1e-6)


def test_per_member_loss_gives_each_member_its_own_generator_loss():
    from lecture13 import gan

    logits = torch.randn(10, 2, requires_grad=True)
    loss = toy.per_member_loss(["saturating", "nonsaturating"])(logits)
    want = (gan.generator_loss_saturating(logits[:, 0]) + gan.generator_loss_nonsaturating(logits[:, 1])) / 2
    assert torch.allclose(loss, want)


def test_train_ring_gans_uses_the_given_iteration_and_counts_discriminator_steps():
    from lecture13 import gan

    calls = []

    def iteration(G, D, opt_d, opt_g, real, k, loss):
        calls.append((len(real), k))
        return gan.gan_iteration(G, D, opt_d, opt_g, real, k, loss)

    ring = toy.ring_of_gaussians(8, 2.0, 0.05)
    runs = toy.train_ring_gans(ring, [0, 1], k=2, d_steps=40, every_d_steps=20, batch_size=8, samples=50,
                               iteration=iteration, progress=False)
    assert calls == [(16, 2)] * 20                  # 40 D steps = 20 iterations of k = 2 minibatches of 8
    assert runs.iterations == [20, 40] and runs.shares.shape == (2, 2, 9)
    assert torch.allclose(runs.shares.sum(-1), torch.ones(2, 2))


def test_mode_hops_sees_mass_move_not_mass_shared():
    moved = torch.zeros(4, 9)
    moved[:, 8] = 0.5
    moved[:2, 3], moved[2:, 4] = 0.5, 0.5              # mode 3 → mode 4 at measurement 2
    assert toy.mode_hops(moved) == [(3, 4, 2)]
    shared = torch.zeros(4, 9)
    shared[:, 3], shared[:, 4] = 0.45, 0.55            # two neighbours holding mass together: no hop
    assert toy.mode_hops(shared) == []
