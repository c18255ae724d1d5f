"""Notebook 06's measurements (lecture13.comparison) on tiny models, and its exercise's checks."""
import math

import pytest
import torch

from lecture13 import comparison
from lecture13.autoregressive import PixelCNN
from lecture13.classifier import FeatureClassifier
from lecture13.factorized import FactorizedBernoulli
from lecture13.gan import DCGAN
from lecture13.vae import VAE

from notebook_tools import SOLUTIONS, exercises, read, run_exercise

NB06 = read(SOLUTIONS / "06_comparing_generative_models.ipynb")
TESTS = {grade_id: test for grade_id, _, test in exercises(NB06)}


def tiny_models():
    torch.manual_seed(0)
    return {
        "factorized": FactorizedBernoulli(),
        "pixelcnn": PixelCNN(channels=4, layers=2, kernel_size=3).eval(),
        "vae": VAE(latent_dim=2, channels=4, hidden=16).eval(),
        "dcgan": DCGAN(z_dim=4, width=4).eval(),
    }


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return FeatureClassifier(width=4, features=8).eval()


def test_bits_per_dim_units():
    assert comparison.to_bits_per_dim(784 * math.log(2), "nats") == pytest.approx(1.0)
    assert comparison.to_bits_per_dim(784.0, "bits") == pytest.approx(1.0)
    assert comparison.to_bits_per_dim(0.3, "bits/dim") == 0.3
    assert comparison.to_bits_per_dim(3072 * math.log(2), "nats", num_dims=3072) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'nats', 'bits' or 'bits/dim'"):
        comparison.to_bits_per_dim(1.0, "nats/pixel")


def test_likelihood_kinds_and_exact_value():
    models = tiny_models()
    x = comparison.real_images("binary", limit=20)
    # θ = 1/2 everywhere: every image costs exactly 784 ln 2 nats = 1 bit/dim.
    exact = comparison.likelihood(models["factorized"], x)
    assert exact["kind"] == "exact" and exact["nats"] == pytest.approx(784 * math.log(2), rel=1e-5)
    assert exact["bits_per_dim"] == pytest.approx(1.0, rel=1e-5)
    ar = comparison.likelihood(models["pixelcnn"], x)
    with torch.no_grad():
        assert ar["kind"] == "exact" and ar["nats"] == pytest.approx(float(models["pixelcnn"].nll(x).mean()), rel=1e-5)
    bound = comparison.likelihood(models["vae"], x, iw_k=20)
    assert bound["kind"] == "bound" and bound["iw_k"] == 20
    assert bound["bits_per_dim"] == pytest.approx(bound["nats"] / (784 * math.log(2)))
    assert comparison.likelihood(models["dcgan"], x) == {"kind": "none"}
    with pytest.raises(TypeError, match="no likelihood rule for Linear"):
        comparison.likelihood(torch.nn.Linear(2, 2), x)


def test_vae_bound_reproduces_the_vae_module():
    from lecture13 import vae as vae_module

    model = tiny_models()["vae"]
    x = comparison.real_images("binary", limit=30)
    row = vae_module.likelihood_table(model, x, ks=(10,), seed=3)
    got = comparison.likelihood(model, x, iw_k=10, seed=3)
    assert got["neg_elbo_nats"] == pytest.approx(row["neg_elbo"], rel=1e-6)
    assert got["nats"] == pytest.approx(row["iw_nll_k10"], rel=1e-6)


def test_draw_gives_images_in_the_models_space():
    for name, model in tiny_models().items():
        images = comparison.draw(model, 3, seed=1)
        assert images.shape == (3, 1, 28, 28), name
        assert images.min() >= 0 and images.max() <= 1, name
        if comparison.BY_NAME[name].space == "binary":
            assert set(images.unique().tolist()) <= {0.0, 1.0}, name
        assert torch.equal(images, comparison.draw(model, 3, seed=1)), f"{name}: the same seed must give the same samples"


def test_naive_and_cached_samplers_agree_and_extrapolation_is_stated():
    model = tiny_models()["pixelcnn"]
    full = comparison.naive_vs_fast(model, n=2, size=(6, 6))
    assert full["same_samples"] and not full["naive_extrapolated"] and full["naive_rows_measured"] == 6
    assert full["naive_s"] == full["naive_measured_s"]
    part = comparison.naive_vs_fast(model, n=2, size=(6, 6), naive_rows=2)
    assert part["same_samples"] and part["naive_extrapolated"]
    assert part["naive_s"] == pytest.approx(part["naive_measured_s"] * 3)
    assert part["ratio"] == pytest.approx(part["naive_s"] / part["fast_s"])


def test_quality_protocol_ranks_real_images_above_noise_and_references_have_a_spread(classifier):
    from lecture13 import metrics

    reference = metrics.test_features(classifier)
    real = comparison.real_images("unit", "train", limit=300)[100:300]
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert comparison.quality(noise, reference, classifier)["frechet"] > 2 * comparison.quality(real, reference, classifier)["frechet"]
    refs = metrics.quality_references(n=100, draws=3, reference=reference, classifier=classifier)
    assert set(refs) == {"real", "binarized"} and refs["real"]["n"] == 100 and refs["real"]["draws"] == 3
    assert refs["real"]["frechet_std"] > 0 and refs["binarized"]["frechet"] > refs["real"]["frechet"]
    with pytest.raises(ValueError, match="'binary' or 'unit'"):
        comparison.real_images("signed")


def test_quality_samples_use_the_bank_only_for_the_shipped_weights():
    model = tiny_models()["pixelcnn"]
    drawn, source = comparison.quality_samples("pixelcnn", model, n=3, seed=1)
    assert source.startswith("drawn here") and torch.equal(drawn, comparison.draw(model, 3, seed=1))
    bank, source = comparison.quality_samples("pixelcnn", model, n=3, shipped=True)
    assert "shipped with the checkpoint" in source and bank.shape == (3, 1, 28, 28)


def test_training_cost_from_metadata():
    meta = {"recipe": "pixelcnn", "train_seconds": 100.0, "steps": 50, "options": {"batch_size": 32, "device": "cpu"}}
    cost = comparison.training_cost(meta)
    assert cost["images_seen"] == 1600 and cost["images_per_s"] == pytest.approx(16.0)
    gan = comparison.training_cost({"recipe": "dcgan", "train_seconds": 10.0, "steps": 10, "options": {"batch_size": 64, "k": 2}})
    assert gan["images_seen"] == 1280
    closed = comparison.training_cost({"recipe": "factorized", "train_seconds": 2.0, "steps": 1, "train_subset": "full"})
    assert closed["images_seen"] == 60_000
    assert comparison.training_cost({})["images_per_s"] is None  # a snapshot without metadata: no number, no crash
    staged = comparison.training_cost({"recipe": "vae", "train_seconds": 5.0, "steps": 2, "options": {"batch_size": 4, "init": "a.pt"}})
    assert staged["continued_from"] == "a.pt" and meta.get("init") is None


def test_interpolation_endpoints_and_models_without_a_latent():
    models = tiny_models()
    pair = comparison.real_images("binary", limit=2)
    path = comparison.interpolation(models["vae"], steps=5, pair=pair)
    mu, _ = models["vae"].encode(pair)
    assert path.shape == (5, 1, 28, 28)
    assert torch.allclose(path[0], torch.sigmoid(models["vae"].decode(mu[:1]))[0], atol=1e-6)
    assert torch.allclose(path[-1], torch.sigmoid(models["vae"].decode(mu[1:]))[0], atol=1e-6)
    assert comparison.interpolation(models["dcgan"], steps=4).shape == (4, 1, 28, 28)
    assert comparison.interpolation(models["pixelcnn"]) is None
    assert comparison.interpolation(models["factorized"]) is None


def test_measure_table_figure_and_claims_on_tiny_models(classifier):
    models = {name: (model, {"recipe": name, "train_seconds": 10.0, "steps": 5, "options": {"batch_size": 8}})
              for name, model in tiny_models().items()}
    settings = comparison.Settings(test_images=20, iw_k=3, samples=4, naive_rows=1, quality_samples=8, reference_draws=2,
                                   interpolation_steps=3)
    result = comparison.measure(models, settings, verbose=False, classifier=classifier)
    assert [r["name"] for r in result.rows] == ["factorized", "pixelcnn", "vae", "dcgan"]
    assert all(r["quality"]["samples"] == 8 and r["quality"]["source"].startswith("drawn here") for r in result.rows)
    assert result.references["real"]["n"] == 8 and result.sharpness["samples"] == 8 and result.sharpness["frechet"] > 0
    assert result.sampler["same_samples"] and result.sampler["naive_extrapolated"]
    text = comparison.markdown(result)
    for label in ("Factorized", "PixelCNN", "VAE", "DCGAN", "no likelihood", "≤ ", "Real training images", "8 samples"):
        assert label in text
    assert "**Likelihood.**" in comparison.discussion(result)
    assert comparison.samples_figure(result, per_row=4) is not None
    assert comparison.interpolation_figure(result) is not None
    verdicts = {c["claim"].split(":")[0]: c["holds"] for c in comparison.claims(result)}
    assert verdicts["Caching makes PixelCNN sampling much faster (≥ 20× at 64 images) without changing the samples"] is False
    assert verdicts["PixelCNN trains faster than PixelRNN (convolutions in parallel vs a recurrence over rows)"] is None


def _planted(ar_nats=90, vae_bound=100, ar_s=5.0, fd=None, dcgan_fd=80.0, vae_means_fd=140.0, ips=(100, 10), noise=1.0):
    """A Comparison with planted numbers, to check that each verdict follows them."""
    fd = fd or {"factorized": 1300.0, "pixelcnn": 300.0, "pixelrnn": 310.0, "vae": 280.0}

    def row(name, kind, nats, sample_s, ips=None):
        lik = {"kind": kind} if kind == "none" else {"kind": kind, "nats": nats, "bits_per_dim": nats / 543.4,
                                                     "neg_elbo_nats": nats + 5, "iw_k": 10}
        return {"name": name, "label": comparison.BY_NAME[name].label, "family": "?", "likelihood": lik, "sample_s": sample_s, "latent": "?",
                "quality": {"frechet": fd.get(name, dcgan_fd), "confident": 0.5, "samples": 1000},
                "training": {"images_per_s": ips, "seconds": 60.0}}

    result = comparison.Comparison(rows=[row("factorized", "exact", 380, 0.01), row("pixelcnn", "exact", ar_nats, ar_s, ips[0]),
                                         row("pixelrnn", "exact", ar_nats + 2, ar_s, ips[1]), row("vae", "bound", vae_bound, 0.01),
                                         row("dcgan", "none", None, 0.01)])
    result.sharpness = {"frechet": vae_means_fd, "confident": 0.4, "samples": 1000}
    result.references = {k: {"frechet": v, "frechet_std": noise, "confident": 0.8, "confident_std": 0.01, "n": 1000, "draws": 5}
                         for k, v in (("real", 7.0), ("binarized", 160.0))}
    return result


def test_claims_follow_the_numbers():
    """Planted numbers: each verdict must flip (or become undecided) when the numbers do."""
    verdict = lambda r: {c["claim"].split(" (")[0].split(":")[0]: c["holds"] for c in comparison.claims(r)}  # noqa: E731
    good = verdict(_planted())
    assert good["Autoregressive models"] is None           # exact 90 < upper bound 100: undecided, never "holds"
    assert good["VAE"] and good["Autoregressive sampling is slow"]
    assert good["GAN samples are sharper than a VAE's"] and good["GANs give the best samples of the families"]
    assert good["PixelCNN trains faster than PixelRNN"]
    bad = verdict(_planted(ar_nats=120, ar_s=0.05, dcgan_fd=290.0, vae_means_fd=100.0, ips=(5, 10)))
    assert bad["Autoregressive models"] is False           # exact 120 > the VAE's upper bound 100: the VAE is better
    assert bad["Autoregressive sampling is slow"] is False and bad["GAN samples are sharper than a VAE's"] is False
    assert bad["GANs give the best samples of the families"] is False and bad["PixelCNN trains faster than PixelRNN"] is False
    close = verdict(_planted(dcgan_fd=139.0, vae_means_fd=140.0))
    assert close["GAN samples are sharper than a VAE's"] is None   # within 3× the noise: undecided


def test_an_exact_value_against_an_upper_bound_is_worded_as_what_it_decides():
    assert comparison.compare_with_bound(90.0, 100.0) == {"decided": False, "winner": None, "at_most_worse": 10.0}
    assert comparison.compare_with_bound(110.0, 100.0) == {"decided": True, "winner": "bounded", "at_least": 10.0}
    undecided = comparison.discussion(_planted(ar_nats=90, vae_bound=100))
    assert "*at most* 10.0 nats worse" in undecided and "certainly better" not in undecided
    decided = comparison.discussion(_planted(ar_nats=120, vae_bound=100))
    assert "certainly better in likelihood, by at least 20.0 nats" in decided     # the best exact value, 120, against the bound 100
    assert "does not rank them" in comparison.discussion(_planted(dcgan_fd=139.0, vae_means_fd=140.0))
    flipped = comparison.discussion(_planted(fd={"factorized": 1300.0, "pixelcnn": 330.0, "pixelrnn": 300.0, "vae": 280.0}))
    assert "PixelCNN has the lower NLL" in flipped


# --------------------------------------------------------------------------- notebook 07's models (section 12)
def test_the_newcomers_are_read_through_the_interface_and_never_ranked_across_data():
    """The shipped DDPM (both samplers) and flow, next to a planted main table: the DDPM's bound is the
    recorded one on 200 grayscale images, its banks are scored by the main protocol, the flow's NLL is
    per point with the true density's; the table, the figure and every claim come out."""
    newcomers = tuple(comparison.Newcomer(c.name, c.label, c.sampler, c.bank, timed=1) for c in comparison.NEWCOMERS)
    beyond = comparison.measure_beyond(_planted(), newcomers, verbose=False)   # the shipped classifier: the protocol
    ddpm, ddim, flow = beyond.rows
    assert ddpm["label"] == "DDPM, ancestral (200 steps)" and ddim["label"] == "DDPM, DDIM (20 steps)"
    assert ddpm["likelihood"]["kind"] == "bound" and ddpm["likelihood"]["images"] == 200
    assert "8-bit" in ddpm["likelihood"]["data"] and ddpm["likelihood"]["source"] == "recorded"
    assert flow["likelihood"]["kind"] == "exact" and flow["likelihood"]["per"] == "point"
    assert flow["likelihood"]["nats"] > flow["likelihood"]["true_nats"]          # cross-entropy ≥ entropy
    assert ddpm["quality"]["samples"] == ddim["quality"]["samples"] == 1000 and flow["quality"] is None
    assert ddim["quality"]["frechet"] > ddpm["quality"]["frechet"] + 10       # two banks, not one scored twice
    table = comparison.beyond_markdown(beyond)
    assert all(r["label"] in table for r in beyond.rows) and "DCGAN (notebook 05, for reference)" in table
    assert "≤ " in table.split("DDPM, ancestral")[1].split("\n")[0]             # a bound is worded as one
    fig = comparison.beyond_figure(beyond, _planted())
    assert len(fig.axes) == 3                                                     # real images + the two DDPM banks
    verdicts = {c["claim"]: c["holds"] for c in comparison.beyond_claims(beyond)}
    assert len(verdicts) == 7 and verdicts[next(k for k in verdicts if "cannot be ranked" in k)] is True
    assert None not in verdicts.values()


def _planted_beyond(ddpm_fd=60.0, ddim_fd=90.0, dcgan_fd=80.0, ddpm_sure=0.6, dcgan_sure=0.5, ddpm_s=1.0, ddim_s=0.1,
                    gap=0.1, inverse=1e-14, kind="bound"):
    main = _planted(dcgan_fd=dcgan_fd)
    main.row("dcgan")["quality"]["confident"] = dcgan_sure
    lik = {"kind": kind, "nats": 2000.0, "bits_per_dim": 3.7, "images": 200, "data": "8-bit grayscale"}

    def ddpm_row(label, fd, seconds):
        return {"name": "ddpm", "label": label, "likelihood": lik, "sample_s": seconds, "timed": 4,
                "quality": {"frechet": fd, "confident": ddpm_sure, "samples": 1000}, "training": {"seconds": 60.0},
                "latent": "?", "family": "?", "likelihood_metrics": {}}

    flow = {"name": "flow_ring", "label": "RealNVP flow", "likelihood": {"kind": "exact", "nats": 0.1 + gap, "true_nats": 0.1, "per": "point"},
            "likelihood_metrics": {"gap_nats": gap, "gap_se": 0.01, "points": 10_000, "inverse_error_float64": inverse,
                                   "inverse_error_float32": 1e-6},
            "sample_s": 1e-5, "timed": 100, "quality": None, "training": {"seconds": 60.0}, "latent": "?", "family": "?"}
    return comparison.Beyond(rows=[ddpm_row("DDPM, ancestral (200 steps)", ddpm_fd, ddpm_s),
                                   ddpm_row("DDPM, DDIM (20 steps)", ddim_fd, ddim_s), flow],
                             dcgan=main.row("dcgan"), references=main.references, lecture_rows=main.rows, lecture_samples=64)


def test_the_newcomers_claims_follow_the_numbers():
    verdict = lambda b: [c["holds"] for c in comparison.beyond_claims(b)]  # noqa: E731
    assert verdict(_planted_beyond()) == [True] * 7
    #             flow NLL below the truth, a bad inverse, DDPM worse than the GAN, fast, DDIM no faster and better
    bad = _planted_beyond(gap=-0.5, inverse=1e-3, ddpm_fd=120.0, ddpm_s=0.0001, ddim_s=0.0001, ddim_fd=50.0, kind="exact")
    assert verdict(bad) == [False] * 7
    assert verdict(_planted_beyond(ddpm_sure=0.4))[2] is False           # better Fréchet but fewer sure: not both
    assert verdict(_planted_beyond(ddpm_fd=79.0))[2] is None             # within 3× the noise: undecided


def test_missing_checkpoints_are_reported_not_fatal(capsys):
    missing = comparison.Contender("not_a_shipped_model", "Nothing", "binary")
    assert comparison.load([missing]) == {}
    assert "not_a_shipped_model: not shipped yet" in capsys.readouterr().out
    empty = comparison.measure({}, comparison.QUICK, verbose=False)
    assert empty.rows == [] and "nothing to compare" in comparison.markdown(empty)


PLANTED = [
    "def to_bits_per_dim(value, unit, num_dims=784):\n    return value / num_dims if unit != 'bits/dim' else value",  # no ln 2
    "import math\ndef to_bits_per_dim(value, unit, num_dims=784):\n"
    "    return value / (num_dims * math.log(2)) if unit != 'bits/dim' else value",                                  # bits ÷ ln 2 too
    "import math\ndef to_bits_per_dim(value, unit, num_dims=784):\n"
    "    return {'nats': value / (784 * math.log(2)), 'bits': value / 784}.get(unit, value)",                       # D fixed at 784
    "import math\ndef to_bits_per_dim(value, unit, num_dims=784):\n"
    "    return {'nats': value * math.log(2) / num_dims, 'bits': value / num_dims}.get(unit, value)",               # × ln 2
]


@pytest.mark.parametrize("answer", PLANTED)
def test_visible_check_catches_planted_bugs(answer):
    test = TESTS["ex-to-bits-per-dim"]
    out = run_exercise(NB06, answer, test.split("### BEGIN HIDDEN TESTS")[0], grading=False)
    assert "❌" in out and "expected" in out, out
    with pytest.raises(AssertionError):
        run_exercise(NB06, answer, test, grading=True)


def test_reference_answer_passes_visible_and_hidden_tests():
    found = {grade_id: (answer, test) for grade_id, answer, test in exercises(NB06)}
    assert set(found) == {"ex-to-bits-per-dim", "ex-decide"}
    for answer, test in found.values():
        assert "✅" in run_exercise(NB06, answer, test, grading=True)
