"""What notebook 04 states as fact, recomputed at small scale.

Each test names the section of solutions/04_generative_adversarial_networks.ipynb whose sentence it
checks. The notebook prints its numbers and generates its verdicts from them; these tests assert the
directions its prose states, so a changed helper, a re-recorded sweep or a retrained toy GAN that
reverses a claim fails here rather than silently changing the notebook's story.
"""
import json
import math
from pathlib import Path

import pytest
import torch

from lecture13 import gan, toy

NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "04_generative_adversarial_networks.ipynb"
P_DATA = toy.Mixture1D(means=(-2.0, 2.0), stds=(0.5, 0.5), weights=(0.5, 0.5))
P_G = toy.Mixture1D(means=(0.0,), stds=(1.5,), weights=(1.0,))


# --------------------------------------------------------------------------- section 2
def _value_and_jsd(half_width: float, points: int) -> tuple[float, float]:
    """V(D*, G) and −log 4 + 2 JSD, each by the trapezoid rule on [−half_width, half_width]."""
    x = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    lpd, lpg = P_DATA.log_prob(x, torch.float64), P_G.log_prob(x, torch.float64)
    lm = torch.logaddexp(lpd, lpg)
    value = torch.trapezoid(lpd.exp() * (lpd - lm) + lpg.exp() * (lpg - lm), x).item()
    return value, -math.log(4) + 2 * toy.divergences(lpd, lpg, x)["jsd"].item()


def test_v_at_d_star_equals_minus_log4_plus_2jsd_to_1e6_on_a_wide_grid_and_not_on_the_old_one():
    value, identity = _value_and_jsd(12.0, 2401)
    assert abs(value - identity) < 1e-6
    old_value, old_identity = _value_and_jsd(4.5, 901)               # the grid that cut p_g's tails
    assert abs(old_value - old_identity) > 1e-3


def test_jsd_is_nonnegative_and_v_reaches_minus_log4_only_at_p_g_equal_p_data():
    x = torch.linspace(-12, 12, 2401, dtype=torch.float64)
    lpd = P_DATA.log_prob(x, torch.float64)
    assert toy.divergences(lpd, P_G.log_prob(x, torch.float64), x)["jsd"] > 0
    assert abs(toy.divergences(lpd, lpd, x)["jsd"].item()) < 1e-12   # V(D*, G) = −log 4 there


def test_a_trained_discriminator_is_close_to_d_star_and_its_value_is_not_above_the_optimum():
    torch.manual_seed(0)
    D = gan.MLPDiscriminator(data_dim=1, hidden=32, depth=2)
    with toy.one_thread():
        gan.fit_discriminator(D, P_DATA, P_G, steps=800, batch_size=256, lr=5e-3)
    x = torch.linspace(-4.5, 4.5, 901)
    with torch.no_grad():
        d = torch.sigmoid(D(x.unsqueeze(1)))
    where = (P_DATA.density(x) + P_G.density(x)) > 0.1
    assert (d - gan.optimal_discriminator(P_DATA.density(x), P_G.density(x))).abs()[where].max() < 0.1
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        value = -gan.discriminator_loss(D(P_DATA.sample(100_000, g)), D(P_G.sample(100_000, g))).item()
    optimum, _ = _value_and_jsd(12.0, 2401)
    assert value < optimum + 3 * 0.0025                                 # 3 Monte Carlo standard errors


# --------------------------------------------------------------------------- section 3
@pytest.fixture(scope="module")
def saturation():
    data = toy.Mixture1D(means=(4.0,), stds=(0.5,), weights=(1.0,))
    return {"sgd": toy.saturation_runs(data, [0, 1], optimizer="sgd", lr=0.05),
            "adam": toy.saturation_runs(data, [0, 1], optimizer="adam", lr=1e-3)}


def test_with_d_ahead_the_minimax_gradient_is_about_1e5_times_smaller(saturation):
    runs = saturation["sgd"]
    ratio = runs.grad_g[0, runs.columns("saturating")] / runs.grad_g[0, runs.columns("nonsaturating")]
    assert ((ratio > 1e-6) & (ratio < 1e-4)).all(), ratio
    assert (runs.d_fake[0] < 1e-4).all()                             # D rejects the samples confidently


def test_with_sgd_the_minimax_generator_stays_put_and_the_nonsaturating_one_reaches_the_data(saturation):
    runs = saturation["sgd"]
    sat, ns = runs.columns("saturating"), runs.columns("nonsaturating")
    assert (runs.sample_means[sat] - runs.start_means[sat]).abs().max() < 0.25
    assert (runs.sample_means[ns] - 4.0).abs().max() < 0.25


def test_with_adam_the_minimax_generator_moves_anyway(saturation):
    sgd, adam = saturation["sgd"], saturation["adam"]
    sat = adam.columns("saturating")
    assert ((adam.sample_means[sat] - sgd.sample_means[sat]).abs() > 2).all()
    assert (adam.sample_means[sat] > 3).all()


def test_under_d_star_the_losses_follow_jsd_and_kl_minus_2jsd_and_the_nonsaturating_one_seeks_a_mode():
    x = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    lpd = P_DATA.log_prob(x, torch.float64)
    theta = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    lq = toy.normal_log_prob(x, theta[0], theta[1])
    fixed_log_d = (lpd - torch.logaddexp(lpd, lq)).detach()
    fixed_log_1md = (lq - torch.logaddexp(lpd, lq)).detach()
    ns = torch.autograd.grad(torch.trapezoid(lq.exp() * -fixed_log_d, x), theta, retain_graph=True)[0]
    sat = torch.autograd.grad(torch.trapezoid(lq.exp() * fixed_log_1md, x), theta, retain_graph=True)[0]
    d = toy.divergences(lpd, lq, x)
    assert torch.allclose(ns, torch.autograd.grad(d["kl_qp"] - 2 * d["jsd"], theta, retain_graph=True)[0], atol=1e-10)
    assert torch.allclose(sat, torch.autograd.grad(2 * d["jsd"], theta)[0], atol=1e-10)

    mus = torch.linspace(-3, 3, 61, dtype=torch.float64)
    stds = torch.linspace(0.2, 3.0, 29, dtype=torch.float64)
    d = toy.divergences(lpd, toy.normal_log_prob(x, mus[:, None, None], stds[None, :, None]), x)

    def best(values):
        i, j = divmod(int(values.argmin()), len(stds))
        return float(mus[i]), float(stds[j])

    for mu, s in (best(d["kl_pq"]), best(d["jsd"])):                 # both span the two modes
        assert abs(mu) < 0.1 and s > 1.5
    mu, s = best(d["kl_qp"] - 2 * d["jsd"])                           # one mode, the data's width
    assert abs(abs(mu) - 2) <= 0.25 and abs(s - 0.5) <= 0.15


# --------------------------------------------------------------------------- section 5
@pytest.fixture(scope="module")
def sweep():
    return toy.load_ring_sweep()


def test_the_recorded_sweep_is_what_the_code_computes(sweep):
    """Rerun every setting's first measurement (250 discriminator steps, all five seeds) and compare."""
    first = sweep.meta["every_d_steps"]
    runs = toy.ring_sweep(d_steps=first, every_d_steps=first)
    assert list(runs) == sweep.meta["settings"] == list(toy.RING_SETTINGS)
    for name, run in runs.items():
        assert (run.shares[0] - sweep.shares(name)[0]).abs().max() <= 0.02, name


def _final(sweep, name):
    c = {key: value[-1] for key, value in sweep.coverage(name).items()}
    c["top"] = sweep.shares(name)[-1, :, :-1].max(-1).values
    c["spread"] = toy.spread(sweep.snapshots[name][-1])
    c["collapsed"] = int((c["modes"] <= 2).sum())
    return c


def test_with_adam_both_losses_cover_about_as_many_modes_and_nothing_collapses(sweep):
    ns, sat = _final(sweep, "non-saturating, Adam, k=1"), _final(sweep, "saturating, Adam, k=1")
    assert abs(float(ns["modes"].mean() - sat["modes"].mean())) <= 1.5
    assert ns["modes"].min() >= 5 and sat["modes"].min() >= 5
    assert ns["collapsed"] == sat["collapsed"] == 0


def test_at_equal_discriminator_steps_k5_covers_fewer_modes_than_k1_in_every_seed(sweep):
    """Seed s of both settings starts from the same weights: a paired comparison."""
    k5, k1 = _final(sweep, "non-saturating, Adam, k=5"), _final(sweep, "non-saturating, Adam, k=1")
    assert (k5["modes"] < k1["modes"]).all() and (k5["quality"] < k1["quality"]).all()


def test_with_sgd_every_generator_collapses_to_at_most_two_modes_and_with_adam_none_does(sweep):
    sgd = [_final(sweep, name)["modes"] for name in ("saturating, SGD, k=1", "non-saturating, SGD, k=1")]
    adam = [_final(sweep, name)["modes"] for name in ("non-saturating, Adam, k=1", "saturating, Adam, k=1")]
    assert max(m.max() for m in sgd) <= 2 < min(m.min() for m in adam)
    sat = _final(sweep, "saturating, SGD, k=1")
    assert int((sat["top"] >= 0.9).sum()) >= 1                          # section 5.1: onto a single mode
    ns = _final(sweep, "non-saturating, SGD, k=1")
    assert int((ns["spread"] < 0.25).sum()) > len(sweep.meta["seeds"]) // 2   # shrunk to nearly a point


def test_sgd_runs_hop_between_modes(sweep):
    def hopping(name):
        shares = sweep.shares(name)
        return sum(bool(toy.mode_hops(shares[:, s])) for s in range(shares.shape[1]))

    assert hopping("saturating, SGD, k=1") >= 1                       # section 5.1's run


def test_a_collapsing_setting_covers_fewer_modes_than_the_healthy_one_at_small_scale():
    """Three seeds, 1,500 discriminator steps: every saturating-SGD generator covers fewer modes than
    every non-saturating-Adam one (the recorded sweep, checked above, shows the collapse itself)."""
    ring = toy.ring_of_gaussians(**toy.RING)
    modes = {name: toy.train_ring_gans(ring, [0, 1, 2], d_steps=1500, every_d_steps=500, progress=False,
                                       **toy.RING_SETTINGS[name]).coverage()["modes"][-1]
             for name in ("saturating, SGD, k=1", "non-saturating, Adam, k=1")}
    assert modes["saturating, SGD, k=1"].max() < modes["non-saturating, Adam, k=1"].min(), modes


def test_generators_that_cover_the_ring_leave_far_more_mass_between_modes_than_the_data(sweep):
    off_data = math.exp(-4.5)                                         # a 2-D Gaussian's mass beyond 3σ
    for name in ("non-saturating, Adam, k=1", "saturating, Adam, k=1"):
        assert (1 - _final(sweep, name)["quality"]).min() > 10 * off_data, name


def test_the_kept_generator_covers_all_eight_modes(sweep):
    name = "non-saturating, Adam, k=1"
    seed = sweep.meta["seeds"][int(_final(sweep, name)["modes"].argmax())]
    with torch.no_grad():
        samples = sweep.generator(name, seed)(torch.randn(100_000, 2, generator=torch.Generator().manual_seed(2)))
    ring = toy.ring_of_gaussians(**toy.RING)
    c = toy.coverage_from_shares(toy.mode_shares(samples, ring))
    assert c["modes"] == 8 and 0.5 < c["quality"] < 1 - 10 * math.exp(-4.5)


# --------------------------------------------------------------------------- exercises
def test_the_exercise_prose_does_not_explain_the_grader():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown").lower()
    assert "grader" not in prose and "the check catches" not in prose
