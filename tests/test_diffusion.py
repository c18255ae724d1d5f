"""Diffusion (DDPM/DDIM): the schedule, q(x_t | x_0) against the chain, the U-Net, the loss, both
samplers, the variational bound, the toy score field, and the shipped checkpoint."""
import math

import pytest
import torch

from lecture13 import checkpoints, diffusion, metrics
from lecture13.data import loader, tensors


class Function(torch.nn.Module):
    """A fixed function in the place of a network."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def tiny(T: int = 20, width: int = 8) -> diffusion.DDPM:
    torch.manual_seed(0)
    return diffusion.DDPM(T=T, width=width)


# --------------------------------------------------------------------------- the schedule and the forward process
@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_alpha_bar_falls_monotonically_to_almost_zero(kind):
    s = diffusion.make_schedule(200, kind)
    assert s.T == 200 and ((s.betas > 0) & (s.betas < 1)).all()
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    assert 0.99 < float(s.alpha_bars[0]) < 1 and float(s.alpha_bars[-1]) < 1e-3   # x_T is (almost) pure noise
    # eq. 4's coefficients are those of the chain: ᾱ_t = Π (1 − β_s)
    assert torch.allclose(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    # the posterior variance lies between 0 and β_t (eq. 7)
    assert (s.posterior_variance[1:] > 0).all() and (s.posterior_variance <= s.betas + 1e-12).all()


def test_q_sample_matches_running_the_chain_in_distribution():
    """x_t from the closed form (eq. 4) and from t steps of eq. 2: the same mean √ᾱ_t x_0 and variance
    1 − ᾱ_t, to within four standard errors on 20,000 draws per pixel value."""
    s = diffusion.make_schedule(50)
    x0 = torch.tensor([-1.0, -0.3, 0.4, 1.0]).repeat(20000, 1)              # 20,000 draws of four values
    g = torch.Generator().manual_seed(0)
    for t in (1, 10, 25, 50):
        closed = diffusion.q_sample(s, x0, torch.full((len(x0),), t), torch.randn(x0.shape, generator=g))
        chain = diffusion.forward_chain(s, x0, t, generator=g)
        a = float(s.alpha_bars[t - 1])
        n = len(x0)
        for x in (closed, chain):
            assert torch.allclose(x.mean(0), math.sqrt(a) * x0[0], atol=4 * math.sqrt((1 - a) / n))
            assert torch.allclose(x.var(0), torch.full((4,), 1 - a), atol=4 * (1 - a) * math.sqrt(2 / n))
        assert torch.allclose(closed.mean(0), chain.mean(0), atol=6 * math.sqrt((1 - a) / n))


def test_timestep_embedding_tells_the_steps_apart():
    e = diffusion.timestep_embedding(torch.arange(1, 201), 24)
    assert e.shape == (200, 24) and e.abs().max() <= 1
    assert torch.cdist(e, e).add(torch.eye(200) * 10).min() > 0.1


# --------------------------------------------------------------------------- network and loss
def test_unet_keeps_the_image_shape_and_the_default_is_small():
    net = diffusion.UNet(width=8)
    out = net(torch.randn(3, 1, 28, 28), torch.tensor([1, 5, 20]))
    assert out.shape == (3, 1, 28, 28)
    cost = diffusion.cost(diffusion.DDPM().net)
    assert cost["megabytes"] < 10 and cost["parameters"] == 351_244
    assert cost["multiply_adds"] < 20e6          # cheap enough for 200-step sampling on a CPU


def test_the_loss_falls_on_a_tiny_run():
    model = tiny()
    data = loader("train", "signed", batch_size=32, seed=0, subset="embedded", limit=32 * 30)
    with diffusion.one_thread():
        history = diffusion.fit_ddpm(model, data, lr=2e-3, epochs=1, progress=False)
    losses = history.series()
    assert len(losses) == 30
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:5]) / 5


def test_the_loss_is_l_simple():
    """ε_θ that returns the true noise has loss 0 (eq. 14 is the MSE of the noise prediction)."""
    model = tiny()
    x0 = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.manual_seed(3)
    t = torch.randint(1, model.T + 1, (8,))
    noise = torch.randn_like(x0)
    x_t = diffusion.q_sample(model.schedule, x0, t, noise)
    a = model.schedule.at(model.schedule.alpha_bars, t)
    model.net = Function(lambda x, steps: (x - a.sqrt() * x0) / (1 - a).sqrt())   # the exact noise
    torch.manual_seed(3)
    assert float(diffusion.ddpm_loss(model, x0)) < 1e-8
    assert torch.allclose(model.net(x_t, t), noise, atol=1e-4)


# --------------------------------------------------------------------------- samplers
def test_ancestral_samples_are_images_in_the_unit_interval_and_depend_on_the_seed():
    model = tiny()
    a = model.draw(3, torch.Generator().manual_seed(0))
    b = model.draw(3, torch.Generator().manual_seed(0))
    c = model.draw(3, torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 28, 28) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_with_eta_zero_is_a_deterministic_function_of_x_T():
    model = tiny()
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    first, second = model.ddim(x_T, steps=5), model.ddim(x_T.clone(), steps=5)
    assert torch.equal(first, second)
    assert model.ddim_times(5) == [20, 15, 10, 6, 1]
    # draw_ddim starts from the same x_T as draw (the generator's first draw)
    g = torch.Generator().manual_seed(7)
    assert torch.equal(diffusion.to_unit(model.ddim(model.initial_noise(2, g), 5)),
                       model.draw_ddim(2, torch.Generator().manual_seed(7), 5))


def test_the_ancestral_sampler_is_right_for_gaussian_data():
    """With the exact ε of data N(0, s² I) (ε = √(1 − ᾱ) x_t / (ᾱ s² + 1 − ᾱ)) the toy sampler's points
    have the data's spread (within the few per cent that σ_t² = β̃_t takes off)."""
    model = diffusion.ToyDiffusion()
    ab = model.schedule.alpha_bars
    s2 = 4.0

    def exact(x, t):
        a = ab[t - 1].float().unsqueeze(1)
        return (1 - a).sqrt() * x / (a * s2 + 1 - a)

    model.net = Function(exact)
    x = model.sample(20000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.std(0), torch.full((2,), 2.0), atol=0.08)
    assert x.mean(0).abs().max() < 0.05


def test_slerp_keeps_the_norm_of_gaussian_codes_and_interpolation_decodes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(784, generator=g), torch.randn(784, generator=g)
    mid = diffusion.slerp(a, b, 0.5)
    assert abs(float(mid.norm()) - float(a.norm() + b.norm()) / 2) < 0.05 * float(a.norm())
    assert torch.allclose(diffusion.slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(diffusion.slerp(a, b, 1.0), b, atol=1e-4)
    frames = tiny().interpolation(4, seed=0)
    assert frames.shape == (4, 1, 28, 28)


# --------------------------------------------------------------------------- the bound
def test_the_discretised_decoder_is_a_distribution_over_the_256_values():
    values = (torch.arange(256).float() / 255 * 2 - 1).view(256, 1)
    for mean, std in ((0.0, 0.01), (0.93, 0.003), (-1.2, 0.05), (0.2, 1e-4)):
        logp = diffusion.discretized_gaussian_log_likelihood(values, torch.full_like(values, mean), std)
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-4)


def test_the_bound_has_nonnegative_terms_and_does_not_depend_on_the_batch_size():
    model = tiny()
    x = tensors("test", "unit", subset="embedded", limit=12)[0]
    a = diffusion.variational_bound(model, x, torch.Generator().manual_seed(0), batch_size=12)
    b = diffusion.variational_bound(model, x, torch.Generator().manual_seed(1), batch_size=5)
    for terms in (a, b):
        assert all(torch.isfinite(v).all() for v in terms.values())
        assert (terms["prior"] >= 0).all() and (terms["diffusion"] >= 0).all() and (terms["decoder"] >= 0).all()
        assert float(terms["prior"].max()) < 1.0           # ᾱ_T ≈ 0: q(x_T | x_0) ≈ N(0, I)
    # Different draws of x_t and a different batching: the same bound to within its Monte Carlo noise.
    assert float(a["total"].mean()) == pytest.approx(float(b["total"].mean()), rel=0.03)
    report = model.likelihood(x)
    assert report["kind"] == "bound" and report["bits_per_dim"] == pytest.approx(report["nats"] / (784 * math.log(2)))


def test_the_bound_is_above_the_entropy_of_uniform_8_bit_noise():
    """For images whose pixels are i.i.d. uniform over the 256 values, −log p(x) averages at least the
    entropy 784 ln 256 for *any* model p: so must its upper bound."""
    model = tiny()
    x = torch.randint(0, 256, (20, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float() / 255
    bound = diffusion.variational_bound(model, x, torch.Generator().manual_seed(0))["total"].mean()
    assert float(bound) >= 784 * math.log(256)


# --------------------------------------------------------------------------- the toy
def test_the_toy_score_field_points_back_to_the_ring():
    model, history = diffusion.train_toy_diffusion(steps=300)
    assert history.series()[-1] < history.series()[0]
    angles = torch.linspace(0, 2 * math.pi, 17)[:-1]
    unit = torch.stack([angles.cos(), angles.sin()], 1)
    outside, inside = diffusion_score(model, 3.5 * unit), diffusion_score(model, 0.5 * unit)
    assert ((outside * unit).sum(1) < 0).float().mean() >= 0.9     # outside the ring (radius 2): inwards
    assert ((inside * unit).sum(1) > 0).float().mean() >= 0.9      # inside it: outwards
    x = model.sample(50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 2) and torch.isfinite(x).all()


def diffusion_score(model, points, t=20):
    return model.score(points, t)


# --------------------------------------------------------------------------- recipe and checkpoint
def test_a_run_continued_from_its_saved_state_is_the_uninterrupted_run(tmp_path):
    """A long CPU run split over sessions (``--option state=FILE``) gives the very weights of one
    uninterrupted run: 3 epochs at once vs 1 epoch, then 2 more from the saved state."""
    options = {"epochs": 3, "batch_size": 32, "lr": 1e-3, "seed": 0, "subset": "embedded", "limit": 96,
               "progress": False}
    torch.manual_seed(0)
    whole = diffusion.DDPM(T=10, width=8)
    diffusion._fit(whole, options)
    state = tmp_path / "state.pt"
    torch.manual_seed(0)
    first = diffusion.DDPM(T=10, width=8)
    diffusion._fit(first, {**options, "epochs": 1, "state": str(state)})
    torch.manual_seed(1)                 # a new session: other global random state, another fresh model
    torch.randn(5)
    second = diffusion.DDPM(T=10, width=8)
    history = diffusion._fit(second, {**options, "state": str(state)})
    assert len(history.steps) == 9       # the 3 steps before the break count too
    for key, value in whole.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    changed = [k for k, v in first.state_dict().items() if not torch.equal(v, second.state_dict()[k])]
    assert changed, "the continued run did not train: the state after epoch 1 came back unchanged"


def test_a_snapshot_after_an_epoch_is_the_model_a_shorter_run_trains(tmp_path):
    """``train ddpm --max-steps N`` (N = the steps up to an epoch) trains exactly the snapshot that a
    longer run saved after that epoch: how the shipped model can be taken from a long run."""
    options = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "seed": 0, "subset": "embedded", "limit": 128,
               "progress": False}
    torch.manual_seed(0)
    long_run = diffusion.DDPM(T=10, width=8)
    diffusion._fit(long_run, {**options, "snapshot": str(tmp_path / "snap.pt")})
    snapshot, meta = checkpoints.load_checkpoint(tmp_path / "snap.pt")
    assert meta["steps"] == 8                                   # 2 epochs of 128 / 32 = 4 steps
    torch.manual_seed(0)
    short_run = diffusion.DDPM(T=10, width=8)
    diffusion._fit(short_run, {**options, "epochs": 20, "max_steps": 8})
    for key, value in short_run.state_dict().items():
        assert torch.equal(value, snapshot.state_dict()[key]), key


def shipped():
    if "ddpm" not in checkpoints.available():
        pytest.fail("the ddpm checkpoint is not shipped: python -m lecture13 train ddpm --ship")
    return checkpoints.pretrained("ddpm", with_meta=True)


def test_the_shipped_checkpoint_verifies_and_records_its_bound():
    model, meta = shipped()
    entry = checkpoints.read_manifest()["ddpm"]
    assert entry["bytes"] < 10 * 2**20
    assert checkpoints.sha256_file(checkpoints.WEIGHTS_DIR / entry["file"]) == entry["sha256"]
    payload = torch.load(checkpoints.WEIGHTS_DIR / entry["file"], weights_only=True)   # plain data only
    assert payload["model"] == "DDPM"
    recorded = meta["metrics"]["embedded_test"]
    assert recorded["test_images"] == diffusion.BOUND_TEST_IMAGES
    assert 0 < recorded["bound_bits_per_dim"] < 8            # better than 8 bits/dim (storing the bytes)
    assert recorded["nll_bound_nats"] == pytest.approx(
        recorded["prior_nats"] + recorded["diffusion_nats"] + recorded["decoder_nats"], rel=1e-4)
    assert "train ddpm --ship" in meta["command"]


def test_the_shipped_sample_banks_under_the_courses_protocol():
    """The recorded standing of the shipped model (benchmarks/results.md): the ancestral bank beats the
    DCGAN on both numbers of the protocol (issue 21's goal: Fréchet distance lower by more than 3× the
    metric's noise, and more samples classified with confidence), and the DDIM bank and the factorized
    baseline on the Fréchet distance."""
    model, meta = shipped()
    images, record = checkpoints.pretrained_samples("ddpm", with_meta=True)
    assert images.shape == (metrics.QUALITY_SAMPLES, 1, 28, 28) and record["n"] == 1000
    reference = metrics.test_features()
    ancestral = metrics.protocol_scores(images, reference)
    ddim = metrics.protocol_scores(diffusion.pretrained_ddim_samples("ddpm"), reference)
    factorized = metrics.protocol_scores(checkpoints.pretrained("factorized").sample(1000), reference)
    dcgan = checkpoints.read_manifest()["dcgan"]["metrics"]["embedded_test"]
    noise = metrics.quality_references(reference=reference)["real"]["frechet_std"]   # 5 draws of real images
    assert ancestral["frechet"] < dcgan["frechet_distance"] - 3 * noise and ancestral["confident"] > dcgan["confident"]
    assert ancestral["frechet"] < ddim["frechet"] < factorized["frechet"]


def test_the_shipped_models_latent_interpolation_starts_and_ends_at_its_codes():
    """interpolation() decodes, by DDIM, slerp between two codes x_T: its ends are the DDIM images of the
    codes themselves. (DDIM *inversion* of real images is only rough for this model: the cosine
    schedule's last step, ᾱ_T = 2.4e-7 against ᾱ_{T−1} = 2.4e-4, amplifies the network's error about
    30× in the first decoding step, so a real image's code decodes to a garment, not to that image.)"""
    model, _ = shipped()
    with diffusion.one_thread():
        frames = model.interpolation(3, seed=4)
        codes = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(4))
        ends = diffusion.to_unit(model.ddim(codes))
        inverted = model.ddim_invert(tensors("test", "unit", subset="embedded", limit=2)[0] * 2 - 1)
    assert frames.shape == (3, 1, 28, 28)
    assert torch.allclose(frames[0], ends[0], atol=1e-3) and torch.allclose(frames[-1], ends[1], atol=1e-3)
    assert inverted.shape == (2, 1, 28, 28) and torch.isfinite(inverted).all()


def test_the_shipped_ddim_bank_is_redrawn_exactly_from_the_same_noise():
    model, _ = shipped()
    images, record = diffusion.pretrained_ddim_samples("ddpm", with_meta=True)
    assert images.shape == (1000, 1, 28, 28) and record["checkpoint_sha256"] == checkpoints.read_manifest()["ddpm"]["sha256"]
    redrawn = diffusion.ddim_samples(model, checkpoints.SAMPLE_CHUNK, 0)      # the bank's first chunk, seed 0
    assert torch.equal((redrawn * 255).round(), (images[:checkpoints.SAMPLE_CHUNK] * 255).round())
