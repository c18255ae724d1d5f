"""The normalizing flows (lecture13.flows): a RealNVP is a density, exactly, and the measurements the
notebook shows say so; the shipped flows verify and reproduce; the coupling-layer exercises' checks
catch realistic wrong answers and pass right ones written differently."""
import math

import pytest
import torch

from lecture13 import checkpoints, exercises, flows, interface, recipes, toy
from lecture13.checks import flows as checks


@pytest.fixture(autouse=True)
def one_thread():
    with toy.one_thread():
        yield


def random_flow(seed: int = 0, layers: int = 6) -> flows.RealNVP:
    """A flow whose couplings are far from the identity (a new one is exactly N(0, I))."""
    torch.manual_seed(seed)
    flow = flows.RealNVP(layers=layers, hidden=16, density="ring")
    with torch.no_grad():
        for layer in flow.couplings:
            layer.net[-1].weight.normal_(0, 0.3)
            layer.net[-1].bias.normal_(0, 0.3)
    return flow.eval()


@pytest.fixture(scope="module")
def ring_flow():
    return checkpoints.pretrained("flow_ring")


# ----------------------------------------------------------------------------- the model
def test_shapes_of_forward_inverse_log_prob_and_draw():
    flow, x = random_flow(), flows.test_points("ring", 7)
    z, log_det = flow(x)
    assert z.shape == (7, 2) and log_det.shape == (7,)
    assert flow.inverse(z).shape == (7, 2) and flow.log_prob(x).shape == (7,)
    layer_z, layer_log_det = flow.couplings[0](x)
    assert layer_z.shape == (7, 2) and layer_log_det.shape == (7,)
    g = torch.Generator().manual_seed(0)
    points = flow.draw(5, g)
    assert points.shape == (5, 2)
    assert torch.equal(points, flow.draw(5, torch.Generator().manual_seed(0)))


def test_a_coupling_leaves_the_masked_dimension_alone_and_the_masks_alternate():
    flow, x = random_flow(), flows.test_points("ring", 50)
    masks = [layer.mask.tolist() for layer in flow.couplings]
    assert masks[:3] == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    z, _ = flow.couplings[0](x)
    assert torch.equal(z[:, 0], x[:, 0]) and not torch.allclose(z[:, 1], x[:, 1])


def test_a_new_flow_is_its_standard_normal_base():
    flow, x = flows.RealNVP(), torch.randn(20, 2)
    base = -0.5 * (x ** 2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(flow.log_prob(x), base, atol=1e-6)


def test_the_log_scale_is_bounded_by_tanh():
    flow = random_flow()
    layer = flow.couplings[0]
    with torch.no_grad():
        layer.net[-1].bias.fill_(1e4)                       # a network gone wild
        s, _ = layer.log_scale_and_shift(layer.mask * torch.randn(10, 2))
    assert float(s.abs().max()) <= layer.max_log_scale and torch.isfinite(layer(torch.randn(10, 2))[0]).all()


def test_the_inverse_inverts_to_numerical_precision():
    flow, x = random_flow(), 2 * torch.randn(500, 2)
    e64, e32 = flows.inverse_error(flow, x), flows.inverse_error(flow, x, dtype=torch.float32)
    assert e64["x_roundtrip"] < 1e-12 and e64["z_roundtrip"] < 1e-12
    assert e32["x_roundtrip"] < 1e-4 and e32["z_roundtrip"] < 1e-4
    layer = flow.couplings[1]
    assert torch.allclose(flows.coupling_inverse(layer, layer(x)[0]), x, atol=1e-5)


def test_the_log_determinant_is_log_abs_det_of_the_autograd_jacobian():
    flow, x = random_flow(), 2 * torch.randn(60, 2)
    report = flows.log_det_error(flow, x)
    assert report["max_abs_error"] < 1e-10 and report["formula"].shape == (60,)
    assert float(report["autograd"].std()) > 0.05                    # not a volume-preserving map
    layer = flow.couplings[0].double()
    assert torch.allclose(flows.coupling_log_det(layer, x.double()),
                          flows.autograd_log_det(layer, x.double()), atol=1e-10)


def test_autograd_log_det_of_a_linear_map_is_log_abs_det():
    A = torch.tensor([[2.0, 1.0], [0.5, -3.0]], dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64)
    got = flows.autograd_log_det(lambda v: (v @ A.T, None), x)
    assert torch.allclose(got, torch.linalg.slogdet(A).logabsdet.expand(4))


def test_a_random_flow_integrates_to_one_within_its_stated_error():
    report = flows.grid_integral(random_flow(), box=6.0, points=300, samples=20_000)
    total = report["integral"] + report["mass_outside"]
    assert abs(total - 1) <= 3 * (report["grid_error"] + report["mass_outside_se"]) + 1e-3, report


def test_the_shipped_ring_flow_integrates_to_one_within_its_stated_error(ring_flow):
    report = flows.grid_integral(ring_flow)
    total = report["integral"] + report["mass_outside"]
    assert abs(total - 1) <= 3 * (report["grid_error"] + report["mass_outside_se"]) + 1e-3, report
    assert report["grid_error"] < 0.03


def test_without_the_log_determinant_it_is_not_a_density(ring_flow):
    no_log_det = flows.plug(ring_flow, log_det=lambda layer, x: torch.zeros(len(x)))
    assert flows.grid_integral(no_log_det)["integral"] < 0.5


def test_the_flow_nll_is_above_the_true_nll_and_the_gap_is_a_kl(ring_flow):
    report = flows.nll_vs_true(ring_flow, flows.test_points("ring", 10_000))
    assert report["true_nll"] == pytest.approx(-1.07, abs=0.03)                 # log 8 + log(2πσ²) + 1
    assert report["gap"] > 4 * report["gap_se"] and report["nll"] < 0.5
    assert report["gap"] == pytest.approx(report["nll"] - report["true_nll"])


def test_the_interface(ring_flow):
    x = flows.test_points("ring", 1000)
    report = ring_flow.likelihood(x)
    assert isinstance(ring_flow, interface.GenerativeModel) and ring_flow.likelihood_kind == "exact"
    assert report["kind"] == "exact" and report["per"] == "point" and report["dims"] == 2
    assert report["nats"] == pytest.approx(flows.mean_nll(ring_flow, x))
    assert report["bits_per_dim"] == pytest.approx(report["nats"] / (2 * math.log(2)))
    assert report["true_nats"] < report["nats"]
    assert "same dimension" in ring_flow.latent_description() and "normalizing flow" in ring_flow.family
    line = ring_flow.interpolation(9, pair=x[:2])
    assert line.shape == (9, 2) and torch.allclose(line[[0, -1]], x[:2], atol=1e-4)
    assert ring_flow.interpolation(5, seed=1).shape == (5, 2)
    metrics = checkpoints.pretrained("flow_ring", with_meta=True)[1]["metrics"]["embedded_test"]
    recorded = ring_flow.recorded_likelihood(metrics)
    assert recorded["kind"] == "exact" and recorded["nats"] == metrics["nll_nats"]


def test_samples_land_on_the_ring(ring_flow):
    ring = flows.make_density("ring")
    shares = toy.mode_shares(ring_flow.draw(4000, torch.Generator().manual_seed(0)), ring)
    assert float(1 - shares[-1]) > 0.4 and bool((shares[:-1] > 0.03).all())      # every mode, most on a mode


# ----------------------------------------------------------------------------- dequantization
def test_dequantize_stays_in_its_bin_and_the_bound_adds_d_log_one_over_h():
    k = torch.randint(0, 256, (100, 784)).double()
    y = flows.dequantize(k, 1 / 256, torch.Generator().manual_seed(0))
    assert torch.equal(flows.quantize(y, 1 / 256), k) and float(y.min()) >= 0 and float(y.max()) < 1
    bound_bits = flows.discrete_nll_bound(0.0, 784, 1 / 256) / (784 * math.log(2))
    assert bound_bits == pytest.approx(8.0)                                       # + 8 bits/dim on [0, 1)


def test_the_dequantized_nll_bounds_the_discrete_nll(ring_flow):
    x = flows.test_points("ring", 200)
    fine, coarse = flows.dequantization_gap(ring_flow, x, bin_width=0.05), flows.dequantization_gap(ring_flow, x, 0.25)
    for report in (fine, coarse):
        assert report["gap"] > 0 and report["bound"] > report["discrete_nll"] > 0     # P(bin) ≤ 1
    assert fine["gap"] < 0.5 < 10 < coarse["gap"]        # tight where p is nearly flat across a bin, loose where not
    assert coarse["discrete_nll"] < fine["discrete_nll"]  # bigger bins hold more probability


# ----------------------------------------------------------------------------- training and checkpoints
def test_the_loss_falls():
    flow = flows.RealNVP(hidden=16, layers=4, density="ring")
    options = {"epochs": 3, "steps_per_epoch": 30, "batch_size": 256, "lr": 3e-3, "seed": 0, "progress": False}
    history = flows._fit(flow, options)
    nll = history.series("eval_test_nll", per="epoch")
    base = 0.5 * (4 + 2 * 0.05 ** 2) + math.log(2 * math.pi)          # N(0, I), the untrained flow, on the ring: 3.84
    assert len(history.steps) == 90 and nll[-1] < nll[0] < base
    assert sum(history.series()[-10:]) / 10 < sum(history.series()[:10]) / 10


def test_a_short_max_steps_run_is_exactly_the_start_of_the_full_run(tmp_path):
    options = {"epochs": 3, "steps_per_epoch": 4, "batch_size": 64, "lr": 3e-3, "seed": 0, "progress": False}
    build = recipes.get_recipe("flow_ring").build
    torch.manual_seed(0)
    full = build(hidden=8, layers=4)
    flows._fit(full, {**options, "snapshot": str(tmp_path / "snap{epoch}.pt")})
    after_two_epochs, _ = checkpoints.load_checkpoint(tmp_path / "snap2.pt")
    torch.manual_seed(0)
    short = build(hidden=8, layers=4)
    flows._fit(short, {**options, "max_steps": 8})
    for key, value in short.state_dict().items():
        assert torch.equal(value, after_two_epochs.state_dict()[key]), key
    key = "couplings.0.net.0.weight"
    assert not torch.equal(full.state_dict()[key], short.state_dict()[key])          # the full run went on


def test_the_command_line_trains_what_the_recipe_trains(tmp_path):
    from lecture13.__main__ import main
    from lecture13.training import seed_everything

    out = tmp_path / "flow.pt"
    assert main(["train", "flow_grid", "--max-steps", "12", "--no-progress", "--out", str(out),
                 "--option", 'model={"hidden": 8}']) == 0
    trained, meta = checkpoints.load_checkpoint(out)
    recipe = recipes.get_recipe("flow_grid")
    seed_everything(0)
    again = recipe.build(hidden=8)
    recipe.fit(again, {**recipe.defaults, "seed": 0, "max_steps": 12, "progress": False})
    for key, value in again.state_dict().items():
        assert torch.equal(value, trained.state_dict()[key]), key
    assert meta["steps"] == 12 and meta["metrics"]["embedded_test"]["true_nll_nats"] > 0


@pytest.mark.parametrize("name", ["flow_ring", "flow_grid"])
def test_the_shipped_flows_verify_and_reproduce_their_recorded_evaluation(name):
    entry = checkpoints.read_manifest()[name]
    model, meta = checkpoints.pretrained(name, with_meta=True)
    assert entry["bytes"] < 500_000 and meta["command"].startswith(f"python -m lecture13 train {name} --ship")
    recorded = meta["metrics"]["embedded_test"]
    measured = flows.nll_vs_true(model, flows.test_points(model.density_name, 10_000))
    assert measured["nll"] == pytest.approx(recorded["nll_nats"], abs=1e-5)
    assert measured["true_nll"] == pytest.approx(recorded["true_nll_nats"], abs=1e-5)
    assert recorded["inverse_error_float64"] < 1e-12 and recorded["log_det_error_float64"] < 1e-10
    assert abs(recorded["grid_integral"] + recorded["mass_outside"] - 1) < 3 * recorded["grid_error"] + 0.01
    assert recorded["gap_nats"] > 0 and recorded["per"] == "point"


def test_a_tampered_flow_checkpoint_is_refused(tmp_path, monkeypatch):
    entry = checkpoints.read_manifest()["flow_ring"]
    data = bytearray((checkpoints.WEIGHTS_DIR / entry["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(checkpoints.CheckpointError, match="checksum"):
        checkpoints.load_checkpoint(tmp_path / entry["file"], sha256=entry["sha256"])


@pytest.mark.slow
def test_the_ship_command_reproduces_the_shipped_ring_flow():
    """The full recipe, as `python -m lecture13 train flow_ring --ship` runs it (seeded, one thread):
    the same weights, bit for bit, where torch and the platform are those it was trained on."""
    from lecture13.checkpoints import environment_info
    from lecture13.training import seed_everything

    shipped, meta = checkpoints.pretrained("flow_ring", with_meta=True)
    here = environment_info()
    if (meta["environment"]["torch"], meta["environment"]["platform"]) != (here["torch"], here["platform"]):
        pytest.skip(f"trained with torch {meta['environment']['torch']} on {meta['environment']['platform']}; "
                    "floating-point results may differ elsewhere")
    recipe = recipes.get_recipe("flow_ring")
    seed_everything(meta["seed"])
    model = recipe.build()
    recipe.fit(model, {**meta["options"], "progress": False})
    for key, value in model.state_dict().items():
        assert torch.equal(value, shipped.state_dict()[key]), key


# ----------------------------------------------------------------------------- the exercises' checks
def _inverse(mistake: str):
    def coupling_inverse(layer, z):
        b = layer.mask
        s, t = layer.log_scale_and_shift(b * z)
        if mistake == "scale again":
            return b * z + (1 - b) * (z - t) * torch.exp(s)
        if mistake == "shift after scale":
            return b * z + (1 - b) * (z * torch.exp(-s) - t)
        if mistake == "mask ignored":
            return (z - t) * torch.exp(-s)
        if mistake == "conditioner on all of z":
            s, t = layer.log_scale_and_shift(z)
            return b * z + (1 - b) * (z - t) * torch.exp(-s)
        if mistake == "divides by s":
            return b * z + (1 - b) * (z - t) / s
        raise ValueError(mistake)
    return coupling_inverse


def _log_det(mistake: str):
    def coupling_log_det(layer, x):
        b = layer.mask
        s, _ = layer.log_scale_and_shift(b * x)
        if mistake == "every dimension":
            return s.sum(dim=1)
        if mistake == "sign flipped":
            return -((1 - b) * s).sum(dim=1)
        if mistake == "exp summed":
            return ((1 - b) * torch.exp(s)).sum(dim=1)
        if mistake == "mean":
            return ((1 - b) * s).mean(dim=1)
        if mistake == "not summed":
            return (1 - b) * s
        raise ValueError(mistake)
    return coupling_log_det


INVERSE_WRONG = {"scale again": "the scale was applied again", "shift after scale": "undo the shift first",
                 "mask ignored": "unchanged dimensions (mask 1) were changed", "conditioner on all of z":
                 "computed from all of z", "divides by s": "s is a log-scale"}
LOG_DET_WRONG = {"every dimension": "every dimension were summed", "sign flipped": "the sign is flipped",
                 "exp summed": "not of the exp(s_j)", "mean": "a mean over the dimensions",
                 "not summed": "shape (n,)"}


def _failures(fn, props):
    total, failures = exercises.run_checks(fn, None, properties=props)
    return total, failures


@pytest.mark.parametrize("mistake,hint", list(INVERSE_WRONG.items()))
def test_the_inverse_check_catches_a_wrong_inverse_and_says_why(mistake, hint):
    _, failures = _failures(_inverse(mistake), checks.coupling_inverse_checks())
    assert failures, mistake
    text = "\n".join(failures)
    assert "expected" in text and "got" in text and "coupling_inverse(layer (mask" in text and hint in text, text
    flow_failure = [f for f in failures if "RealNVP trained on the ring" in f]
    if mistake == "mask ignored":
        # Harmless in the trained flow: the outputs of s and t for the unchanged dimensions never get a
        # gradient, so they are still the 0 they started at. The probe layers' are not, and catch it.
        return
    assert flow_failure and "f⁻¹(f(x)) is off by up to" in flow_failure[0] and "within 3σ of a mode" in flow_failure[0]


def test_s_and_t_of_the_unchanged_dimensions_stay_zero_in_training(ring_flow):
    for layer in ring_flow.couplings:
        s, t = layer.log_scale_and_shift(layer.mask * flows.test_points("ring", 100))
        keep = layer.mask.bool()
        assert not s[:, keep].any() and not t[:, keep].any()


@pytest.mark.parametrize("mistake,hint", list(LOG_DET_WRONG.items()))
def test_the_log_det_check_catches_a_wrong_log_det_and_says_why(mistake, hint):
    _, failures = _failures(_log_det(mistake), checks.coupling_log_det_checks())
    assert failures, mistake
    text = "\n".join(failures)
    assert "coupling_log_det(layer (mask" in text and "autograd" in text and hint in text, text
    if mistake != "not summed":
        assert "expected" in text and "got" in text


@pytest.mark.parametrize("mistake", ["sign flipped", "exp summed", "mean"])
def test_a_wrong_log_det_in_the_flow_no_longer_integrates_to_one(mistake):
    failures = _failures(_log_det(mistake), checks.coupling_log_det_checks())[1]
    flow_failure = [f for f in failures if "RealNVP trained on the ring" in f]
    assert flow_failure and "instead of 1, so it is no longer a density" in flow_failure[0], failures


def _right_inverse(layer, z):                 # written differently: indices instead of a product with the mask
    keep = layer.mask.bool()
    s, t = layer.log_scale_and_shift(z * layer.mask)
    x = z.clone()
    x[:, ~keep] = (z[:, ~keep] - t[:, ~keep]) / torch.exp(s[:, ~keep])
    return x


def _right_log_det(layer, x):                 # written differently: the log of the product of the diagonal
    s, _ = layer.log_scale_and_shift(x * layer.mask)
    return torch.log(torch.where(layer.mask.bool(), torch.ones_like(s), torch.exp(s)).prod(dim=1))


@pytest.mark.parametrize("fn,props,hidden", [
    (flows.coupling_inverse, checks.coupling_inverse_checks, checks.hidden_inputs),
    (_right_inverse, checks.coupling_inverse_checks, checks.hidden_inputs),
    (flows.coupling_log_det, checks.coupling_log_det_checks, checks.hidden_inputs),
    (_right_log_det, checks.coupling_log_det_checks, checks.hidden_inputs),
])
def test_right_answers_pass_the_visible_and_hidden_checks(fn, props, hidden):
    for properties in (props(), props(hidden(), in_the_flow=False)):
        total, failures = _failures(fn, properties)
        assert total >= 2 and not failures, failures


def test_the_checks_fall_back_to_the_reference(capsys):
    def unfinished(layer, z):
        raise NotImplementedError()

    use = exercises.check(unfinished, reference=flows.coupling_inverse, properties=checks.coupling_inverse_checks())
    assert use is flows.coupling_inverse and "not implemented yet" in capsys.readouterr().out
    use = exercises.check(_inverse("scale again"), reference=flows.coupling_inverse,
                          properties=checks.coupling_inverse_checks())
    assert use is flows.coupling_inverse and "❌" in capsys.readouterr().out


def test_every_wrong_answer_also_fails_the_hidden_checks():
    for mistake in INVERSE_WRONG:
        assert _failures(_inverse(mistake), checks.coupling_inverse_checks(checks.hidden_inputs(), False))[1], mistake
    for mistake in LOG_DET_WRONG:
        assert _failures(_log_det(mistake), checks.coupling_log_det_checks(checks.hidden_inputs(), False))[1], mistake


def test_the_checks_work_through_the_graders_channel():
    """The grader calls the answer in another process through lecture13.grading_channel: the coupling
    layers cross as modules, the checks still pass the reference and name a wrong answer."""
    import socket
    import threading

    from lecture13 import grading_channel as ch

    ours, theirs = socket.socketpair()
    objects = [flows.coupling_inverse, flows.coupling_log_det, _inverse("shift after scale"), _log_det("sign flipped")]
    thread = threading.Thread(target=ch.serve, args=(theirs, objects), daemon=True)
    thread.start()
    try:
        trusted = ch.Answer(ours)
        inverse, log_det = trusted.proxy(0, "coupling_inverse"), trusted.proxy(1, "coupling_log_det")
        assert _failures(inverse, checks.coupling_inverse_checks())[1] == []
        assert _failures(log_det, checks.coupling_log_det_checks())[1] == []
        wrong = _failures(trusted.proxy(2, "coupling_inverse"), checks.coupling_inverse_checks())[1]
        assert len(wrong) == 3 and "undo the shift first" in wrong[0]
        wrong = _failures(trusted.proxy(3, "coupling_log_det"), checks.coupling_log_det_checks())[1]
        assert len(wrong) == 3 and "the sign is flipped" in wrong[0] and "no longer a density" in wrong[2]
    finally:
        ours.close()
        thread.join(5)
