"""GANs: the losses, the optimal discriminator, the k-step iteration, DCGAN shapes, exercise checks."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lecture13 import exercises, gan, toy
from lecture13.checks import gans as gan_checks


# --------------------------------------------------------------------------- losses
def _textbook(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits.double()), torch.sigmoid(fake_logits.double())
    return {
        "discriminator": -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean()),
        "saturating": torch.log(1 - d_fake).mean(),
        "nonsaturating": -torch.log(d_fake).mean(),
    }


def test_losses_equal_textbook_formulas_on_random_logits():
    torch.manual_seed(0)
    real, fake = torch.randn(500) * 3, torch.randn(500) * 3
    want = _textbook(real, fake)
    assert torch.allclose(gan.discriminator_loss(real, fake).double(), want["discriminator"], rtol=1e-5)
    assert torch.allclose(gan.generator_loss_saturating(fake).double(), want["saturating"], rtol=1e-5)
    assert torch.allclose(gan.generator_loss_nonsaturating(fake).double(), want["nonsaturating"], rtol=1e-5)


def test_losses_are_finite_for_extreme_logits():
    extreme = torch.tensor([-200.0, -50.0, 50.0, 200.0])
    for value in (gan.discriminator_loss(extreme, extreme), gan.generator_loss_saturating(extreme),
                  gan.generator_loss_nonsaturating(extreme)):
        assert torch.isfinite(value)
    # D certain and right: the loss is 0; certain and wrong: it is the logit's size.
    assert gan.discriminator_loss(torch.tensor([200.0]), torch.tensor([-200.0])) < 1e-6
    assert torch.isclose(gan.generator_loss_nonsaturating(torch.tensor([-200.0])), torch.tensor(200.0))


def _logit_gradient(loss_fn, logit: float) -> float:
    l = torch.tensor([logit], requires_grad=True)
    loss_fn(l).backward()
    return float(l.grad)


def test_saturating_gradient_vanishes_where_d_rejects_samples_and_nonsaturating_does_not():
    for logit in (-8.0, -12.0, -20.0):  # D(G(z)) = σ(logit) → 0
        saturating = abs(_logit_gradient(gan.generator_loss_saturating, logit))
        nonsaturating = abs(_logit_gradient(gan.generator_loss_nonsaturating, logit))
        assert saturating < 1e-3 and saturating == pytest.approx(torch.sigmoid(torch.tensor(logit)).item(), rel=1e-4)
        assert nonsaturating > 0.999
    # Both push the same way: towards larger D(G(z)).
    assert _logit_gradient(gan.generator_loss_saturating, 0.0) < 0
    assert _logit_gradient(gan.generator_loss_nonsaturating, 0.0) < 0


def test_saturating_loss_stalls_a_generator_that_d_rejects():
    """With plain SGD and a discriminator given a head start, G barely moves under the
    minimax loss but reaches the data under the non-saturating one."""
    data = toy.Mixture1D((4.0,), (0.5,), (1.0,))
    means = {}
    for loss in ("saturating", "nonsaturating"):
        torch.manual_seed(0)
        model = gan.ToyGAN(data_dim=1, z_dim=1, hidden=16, depth=2)
        gan.fit_discriminator(model.discriminator, data, gan.GeneratorDistribution(model.generator),
                              steps=100, batch_size=64, lr=1e-2)
        gan.fit_gan(model, gan.toy_batches(data, 64, 100), generator_loss=loss, lr=0.05, optimizer="sgd",
                    progress=False, seed=0)
        means[loss] = float(model.sample(2000, torch.Generator().manual_seed(0)).mean())
    assert abs(means["saturating"] - 4.0) > 3.0, means
    assert abs(means["nonsaturating"] - 4.0) < 1.0, means


def test_unknown_generator_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown generator loss"):
        gan.generator_loss_fn("wasserstein")


# --------------------------------------------------------------------------- optimal discriminator
def test_discriminator_against_fixed_generator_approaches_the_optimum():
    p_data = toy.Mixture1D((-2.0, 2.0), (0.5, 0.5), (0.5, 0.5))
    p_g = toy.Mixture1D((0.0,), (1.5,), (1.0,))
    torch.manual_seed(0)
    D = gan.MLPDiscriminator(1, hidden=32, depth=2)
    gan.fit_discriminator(D, p_data, p_g, steps=1000, batch_size=256, lr=3e-3)
    x = torch.linspace(-4, 4, 401)
    with torch.no_grad():
        d = torch.sigmoid(D(x.unsqueeze(1)))
    d_star = gan.optimal_discriminator(p_data.density(x), p_g.density(x))
    where = (p_data.density(x) + p_g.density(x)) > 0.1  # where there are samples to learn from
    assert (d - d_star).abs()[where].max() < 0.1


# --------------------------------------------------------------------------- the k-step iteration
class _CountingSGD(torch.optim.SGD):
    def __init__(self, params, lr, on_step=None):
        super().__init__(params, lr=lr)
        self.count, self.on_step = 0, on_step

    def step(self, closure=None):
        self.count += 1
        out = super().step(closure)
        if self.on_step:
            self.on_step()
        return out


@pytest.mark.parametrize("k", [1, 3])
def test_k_step_iteration_updates_d_k_times_and_g_once_without_touching_d(k):
    torch.manual_seed(0)
    model = gan.ToyGAN(data_dim=2, z_dim=2, hidden=16)
    G, D = model.generator, model.discriminator
    d_after_each_step = []
    opt_d = _CountingSGD(D.parameters(), lr=0.1, on_step=lambda: d_after_each_step.append(copy.deepcopy(D.state_dict())))
    opt_g = _CountingSGD(G.parameters(), lr=0.1)
    g_before, d_before = copy.deepcopy(G.state_dict()), copy.deepcopy(D.state_dict())
    logged = gan.gan_iteration(G, D, opt_d, opt_g, toy.ring_of_gaussians().sample(16 * k), k)
    assert opt_d.count == k and opt_g.count == 1
    # every D step changed D; G's step (after the last D step) left D exactly as it was
    assert all(not torch.equal(a["net.0.weight"], b["net.0.weight"])
               for a, b in zip([d_before] + d_after_each_step[:-1], d_after_each_step))
    for name, value in D.state_dict().items():
        assert torch.equal(value, d_after_each_step[-1][name])
    assert any(not torch.equal(v, g_before[n]) for n, v in G.state_dict().items())
    assert set(logged) >= {"loss_d", "loss_g", "d_fake"}


def test_discriminator_step_sends_no_gradient_into_g():
    torch.manual_seed(0)
    model = gan.ToyGAN(data_dim=2, z_dim=2, hidden=16)
    calls = []

    def count(module, inputs, output):       # returns None: the output is left as it is
        output.register_hook(lambda grad: calls.append(1))

    model.generator.register_forward_hook(count)
    opt_d, opt_g = gan.make_optimizers(model)
    gan.gan_iteration(model.generator, model.discriminator, opt_d, opt_g, torch.randn(30, 2), k=3)
    assert len(calls) == 1  # only the generator's own step


def test_gan_iteration_rejects_a_batch_smaller_than_k():
    model = gan.ToyGAN()
    opt_d, opt_g = gan.make_optimizers(model)
    with pytest.raises(ValueError, match="cannot be split into k=5"):
        gan.gan_iteration(model.generator, model.discriminator, opt_d, opt_g, torch.randn(3, 2), k=5)


def test_toy_gan_trains_through_the_shared_loop_and_learns_the_data_mean():
    data = toy.Mixture1D((3.0,), (0.5,), (1.0,))
    model = gan.ToyGAN(data_dim=1, z_dim=1, hidden=16)
    history = gan.fit_gan(model, gan.ToyStream(data, 128, 300), k=2, lr=2e-3, progress=False, seed=0)
    assert len(history.steps) == 300 and "loss_d" in history.keys()
    assert abs(float(model.sample(2000).mean()) - 3.0) < 0.5


# --------------------------------------------------------------------------- planted bugs: the exercise checks catch them
def _missing_detach(G, D, opt_d, opt_g, real, k):
    for x in real.tensor_split(k):
        fake = G(torch.randn(len(x), G.z_dim))            # no detach
        loss = gan.discriminator_loss(D(x), D(fake))
        opt_d.zero_grad(); loss.backward(); opt_d.step()
    loss = gan.generator_loss_nonsaturating(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad(); loss.backward(); opt_g.step()


def _wrong_d_sign(G, D, opt_d, opt_g, real, k):
    for x in real.tensor_split(k):
        fake = G(torch.randn(len(x), G.z_dim)).detach()
        loss = -gan.discriminator_loss(D(x), D(fake))      # ascends D's loss
        opt_d.zero_grad(); loss.backward(); opt_d.step()
    loss = gan.generator_loss_nonsaturating(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad(); loss.backward(); opt_g.step()


def _wrong_g_sign(G, D, opt_d, opt_g, real, k):
    for x in real.tensor_split(k):
        fake = G(torch.randn(len(x), G.z_dim)).detach()
        loss = gan.discriminator_loss(D(x), D(fake))
        opt_d.zero_grad(); loss.backward(); opt_d.step()
    loss = -gan.generator_loss_nonsaturating(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad(); loss.backward(); opt_g.step()


def _d_stepped_in_g_step(G, D, opt_d, opt_g, real, k):
    for x in real.tensor_split(k):
        fake = G(torch.randn(len(x), G.z_dim)).detach()
        loss = gan.discriminator_loss(D(x), D(fake))
        opt_d.zero_grad(); loss.backward(); opt_d.step()
    loss = gan.generator_loss_nonsaturating(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad(); opt_d.zero_grad(); loss.backward(); opt_g.step(); opt_d.step()


def _one_d_step(G, D, opt_d, opt_g, real, k):
    fake = G(torch.randn(len(real), G.z_dim)).detach()
    loss = gan.discriminator_loss(D(real), D(fake))
    opt_d.zero_grad(); loss.backward(); opt_d.step()
    loss = gan.generator_loss_nonsaturating(D(G(torch.randn(len(real) // k, G.z_dim))))
    opt_g.zero_grad(); loss.backward(); opt_g.step()


def test_iteration_checks_pass_the_reference():
    _, failures = exercises.run_checks(gan.gan_iteration, gan.gan_iteration, properties=gan_checks.iteration_checks())
    assert failures == []


@pytest.mark.parametrize("bug, message", [
    (_missing_detach, "detach"),
    (_wrong_d_sign, "sign of the discriminator loss"),
    (_wrong_g_sign, "G moved the wrong way"),
    (_d_stepped_in_g_step, "opt_d.step() should run 3 times"),
    (_one_d_step, "opt_d.step() should run 3 times"),
])
def test_iteration_checks_catch_planted_bugs(bug, message):
    _, failures = exercises.run_checks(bug, gan.gan_iteration, properties=gan_checks.iteration_checks())
    assert failures and any(message in f for f in failures), failures


def test_d_stepped_in_g_step_is_reported_as_changing_d():
    _, failures = exercises.run_checks(_d_stepped_in_g_step, gan.gan_iteration, properties=gan_checks.iteration_checks())
    assert any("D's parameters changed after its k=3 steps" in f for f in failures), failures


def test_loss_exercise_checks_catch_an_unstable_or_wrong_answer():
    cases = [exercises.Case(torch.tensor([0.5, -1.0, 60.0]), torch.tensor([-60.0, 2.0, 0.0]))]
    naive = lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())  # noqa: E731
    swapped = lambda r, f: gan.discriminator_loss(f, r)  # noqa: E731
    assert exercises.run_checks(gan.discriminator_loss, gan.discriminator_loss, cases)[1] == []
    assert exercises.run_checks(swapped, gan.discriminator_loss, cases)[1]
    unstable = [exercises.Case(torch.tensor([120.0]), torch.tensor([-120.0, 200.0]))]
    assert exercises.run_checks(naive, gan.discriminator_loss, unstable)[1]


# --------------------------------------------------------------------------- DCGAN
def test_dcgan_shapes_range_and_bad_input():
    model = gan.DCGAN(z_dim=16, width=8).eval()
    x = model.sample(5)
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert model.discriminator(x).shape == (5,)
    with pytest.raises(ValueError, match=r"noise of shape \(N, 16\)"):
        model.generator(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        model.discriminator(torch.randn(5, 28, 28))


def test_dcgan_discriminator_is_causal_per_image_in_eval_mode_and_uses_no_pooling():
    model = gan.DCGAN(width=8).eval()
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    model.discriminator(x)[0].backward()
    assert x.grad[0].abs().sum() > 0 and x.grad[1:].abs().sum() == 0


def test_dcgan_step_through_make_step_changes_both_players():
    torch.manual_seed(0)
    model = gan.DCGAN(z_dim=8, width=4)
    before = copy.deepcopy(model.state_dict())
    opt_d, opt_g = gan.make_optimizers(model)
    logged = gan.make_step(model, opt_d, opt_g, k=2)(torch.rand(8, 1, 28, 28) * 2 - 1)
    changed = {n.split(".")[0] for n, v in model.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[n])}
    assert changed == {"generator", "discriminator"} and logged["grad_g"] > 0


def test_generator_block_checks_catch_planted_bugs():
    from lecture13.checks import dcgan as dcgan_checks

    assert exercises.run_checks(gan.generator_block, None, properties=dcgan_checks.generator_block_checks())[1] == []
    no_bn = lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.ReLU())  # noqa: E731
    stride1 = lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 4, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
    uneven = lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 3, 2, 1, output_padding=1), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
    for bug, message in ((no_bn, "no batch norm"), (stride1, "expected (2, 8, 14, 14)"), (uneven, "checkerboard")):
        failures = exercises.run_checks(bug, None, properties=dcgan_checks.generator_block_checks())[1]
        assert failures and message in failures[0], failures
    # a bias before the batch norm is redundant, not wrong; kernel 2 with stride 2 doubles the size too
    biased = lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 2, 2), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
    assert exercises.run_checks(biased, None, properties=dcgan_checks.generator_block_checks(hidden=True))[1] == []


def test_interpolate_ends_at_both_points_and_is_linear():
    z0, z1 = torch.randn(6), torch.randn(6)
    path = gan.interpolate(z0, z1, 5)
    assert path.shape == (5, 6)
    assert torch.allclose(path[0], z0) and torch.allclose(path[-1], z1)
    assert torch.allclose(path[2], (z0 + z1) / 2, atol=1e-6)
    assert torch.allclose(path[1:] - path[:-1], (z1 - z0).expand(4, 6) / 4, atol=1e-6)


def test_losses_agree_with_bce_with_logits():
    torch.manual_seed(1)
    real, fake = torch.randn(64), torch.randn(64)
    bce = F.binary_cross_entropy_with_logits
    assert torch.isclose(gan.discriminator_loss(real, fake),
                         bce(real, torch.ones(64)) + bce(fake, torch.zeros(64)), atol=1e-6)
    assert torch.isclose(gan.generator_loss_nonsaturating(fake), bce(fake, torch.ones(64)), atol=1e-6)


def test_generator_against_a_frozen_discriminator_collapses():
    ring = toy.ring_of_gaussians(std=0.05)
    _, history, snapshots = gan.train_on_mixture(ring, "nonsaturating", "frozen", iterations=400, every=200,
                                                 progress=False)
    assert len(snapshots) == 2 and snapshots[0].shape == (1000, 2)
    final = history.epochs[-1]
    assert final["eval_spread"] < 1.5 and final["eval_well_covered"] <= 1, final
