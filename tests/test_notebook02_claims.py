"""What notebook 02 states as fact, recomputed at small scale with the shipped checkpoints.

Each test names the section and the sentence of solutions/02_autoencoders.ipynb it checks. The
notebook prints its numbers; these tests assert the direction its prose states, so a retrained
checkpoint or a changed helper that reverses a claim fails here, not silently in the prose.
"""
import pytest
import torch

from lecture13 import autoencoders as ae
from lecture13 import data, metrics
from lecture13.checkpoints import pretrained
from lecture13.training import seed_everything, train


@pytest.fixture(scope="module")
def nb():
    """The notebook's data, the shipped autoencoder, its codes and the PCA basis, as the notebook builds them."""
    torch.manual_seed(0)
    x_train, y_train = data.tensors("train", "unit")
    x_test, y_test = data.tensors("test", "unit")
    shipped = pretrained("autoencoder")
    mean, basis = ae.linear_autoencoder(x_train, 128)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "shipped": shipped,
            "codes": ae.encode_all(shipped, x_train), "test_codes": ae.encode_all(shipped, x_test),
            "mean": mean, "basis": basis, "sweep": {d: pretrained(f"autoencoder_d{d}") for d in ae.LATENT_SIZES}}


def pca_features(nb, x, d):
    return ((x.flatten(1).double() - nb["mean"]) @ nb["basis"][:, :d]).float()


def probe(nb, train_f, test_f, per_class, draws):
    """The notebook's probe: standardise with all training images, fit on each draw of labelled images."""
    a, b = ae.standardize(train_f, test_f)
    idx = [ae.few_labels(nb["y_train"], per_class, seed=s) for s in range(draws)]
    return ae.linear_probes(torch.stack([a[i] for i in idx]), torch.stack([nb["y_train"][i] for i in idx]), b, nb["y_test"])


# --------------------------------------------------------------------------- section 2
def test_after_30_steps_the_loss_is_still_falling_and_far_from_the_shipped_model(nb):
    seed_everything(0)
    model = ae.Autoencoder(latent_dim=32)
    loader = data.loader("train", "unit", batch_size=128, seed=0)
    short = train(model, loader, ae.autoencoder_loss, epochs=1, max_steps=30, lr=2e-3, seed=0, progress=False)
    losses = short.series("loss")
    assert losses[29] < losses[19] < losses[9] < losses[0]
    x = nb["x_test"][:500]
    assert ae.reconstruction_error(model, x).mean() > 3 * ae.reconstruction_error(nb["shipped"], x).mean()


# --------------------------------------------------------------------------- section 3
@pytest.fixture(scope="module")
def errors(nb):
    x = nb["x_test"][:1000]
    linear = {d: ae.linear_reconstruction_error(x, nb["mean"], nb["basis"][:, :d]).mean().item() for d in (1, 2, 4, 8, 16, 32, 64, 128)}
    conv = {d: ae.reconstruction_error(m, x).mean().item() for d, m in nb["sweep"].items()}
    return linear, conv, ae.reconstruction_error(nb["shipped"], x).mean().item()


def test_both_curves_fall_with_d_ever_more_slowly(errors):
    for curve in errors[:2]:
        ds = list(curve)
        assert all(curve[a] > curve[b] for a, b in zip(ds, ds[1:]))
        gains = [(curve[a] - curve[b]) / (b - a) for a, b in zip(ds, ds[1:])]    # error bought per added dimension
        assert all(g > h for g, h in zip(gains, gains[1:]))


def test_conv_autoencoders_beat_pca_at_small_d_then_flatten_and_pca_overtakes_at_128(errors):
    linear, conv, _ = errors
    assert all(conv[d] < linear[d] for d in (2, 8, 32))
    assert linear[128] < conv[128]
    assert conv[32] - conv[128] < 0.05 * conv[32]                     # "from d = 32 to 128 they gain almost nothing"


def test_the_larger_autoencoder_at_d32_beats_the_small_ones_even_at_d128(errors):
    _, conv, shipped = errors
    assert shipped < conv[128]


# --------------------------------------------------------------------------- section 4
@pytest.fixture(scope="module")
def lead_over_pca_10(nb):
    encoder = probe(nb, nb["codes"], nb["test_codes"], 10, 20)
    pca = probe(nb, pca_features(nb, nb["x_train"], 32), pca_features(nb, nb["x_test"], 32), 10, 20)
    return encoder, pca


def test_with_10_labels_encoder_features_match_raw_pixels_and_beat_pca(nb, lead_over_pca_10):
    encoder, pca = lead_over_pca_10
    raw = probe(nb, nb["x_train"].flatten(1), nb["x_test"].flatten(1), 10, 20)
    assert ae.paired_verdict(encoder, pca, "encoder", "PCA").startswith("encoder beat PCA")
    assert (encoder > pca).float().mean() >= 0.9 and (encoder - pca).mean() > 0.03       # "by far": several points
    assert ae.paired_verdict(encoder, raw, "encoder", "raw").startswith("no consistent difference")


@pytest.fixture(scope="module")
def raw_100(nb):
    return probe(nb, nb["x_train"].flatten(1), nb["x_test"].flatten(1), 100, 8)


def test_with_100_labels_raw_pixels_are_ahead_and_the_lead_over_pca_shrinks(nb, raw_100, lead_over_pca_10):
    encoder = probe(nb, nb["codes"], nb["test_codes"], 100, 8)
    pca = probe(nb, pca_features(nb, nb["x_train"], 32), pca_features(nb, nb["x_test"], 32), 100, 8)
    assert ae.paired_verdict(encoder, raw_100, "encoder", "raw").startswith("encoder lost to raw")
    lead_100, lead_10 = (encoder - pca).mean(), (lead_over_pca_10[0] - lead_over_pca_10[1]).mean()
    assert abs(lead_100) < 0.01 and abs(lead_100) < lead_10 / 3       # from several points to a fraction of one


def test_latent_size_for_features_autoencoder_rises_pca_peaks_at_32_none_beats_raw_pixels(nb, raw_100):
    conv = {d: probe(nb, ae.encode_all(m, nb["x_train"]), ae.encode_all(m, nb["x_test"]), 100, 8) for d, m in nb["sweep"].items()}
    pca = {d: probe(nb, pca_features(nb, nb["x_train"], d), pca_features(nb, nb["x_test"], d), 100, 8) for d in nb["sweep"]}
    means = [conv[d].mean() for d in conv]
    assert all(a < b for a, b in zip(means, means[1:]))
    assert max(pca, key=lambda d: pca[d].mean()) == 32
    for d, verdict in ((2, "beat"), (8, "beat"), (32, "lost to"), (128, "beat")):
        assert ae.paired_verdict(conv[d], pca[d], "ae", "pca").startswith(f"ae {verdict} pca"), d
    best = max(list(conv.values()) + list(pca.values()), key=lambda a: a.mean())
    assert ae.paired_verdict(best, raw_100, "code", "raw").startswith("code lost to raw")


# --------------------------------------------------------------------------- section 5
def test_real_codes_are_very_unlikely_under_the_standard_normal(nb):
    codes = nb["codes"]
    standard = torch.distributions.MultivariateNormal(torch.zeros(32), torch.eye(32)).log_prob(codes).mean()
    fitted = ae.fit_gaussian_mixture(codes, 1).log_prob(nb["test_codes"]).mean()
    assert codes.norm(dim=1).mean() > 2 * 32 ** 0.5
    assert standard < fitted - 100


def test_two_stage_samples_are_closer_to_real_images_than_n01_but_not_than_reconstructions(nb):
    n, g = 1000, torch.Generator().manual_seed(0)
    shipped, x_train = nb["shipped"], nb["x_train"]
    gaussian = ae.fit_gaussian_mixture(nb["codes"], 1)
    mixture = ae.fit_gaussian_mixture(nb["codes"], 10, steps=20, seed=0)
    real = x_train[torch.randperm(len(x_train), generator=g)[:n]]
    with torch.no_grad():
        sets = {"real": real, "recon": shipped(real), "n01": shipped.decode(torch.randn(n, 32, generator=g)),
                "gaussian": shipped.decode(gaussian.sample(n, g)), "mixture": shipped.decode(mixture.sample(n, g)),
                "noise": torch.rand(n, 1, 28, 28, generator=g)}
    classifier = metrics.feature_classifier()
    reference = metrics.image_features(nb["x_test"], classifier)
    features = {k: metrics.image_features(v, classifier) for k, v in sets.items()}
    fd = {k: metrics.frechet_distance(f, reference) for k, f in features.items()}
    probs = {k: torch.softmax(classifier.head(f), dim=1) for k, f in features.items()}
    confident = {k: float((p.max(1).values > 0.9).float().mean()) for k, p in probs.items()}
    # the Fréchet distances order the generators, bracketed by the reconstructions and the real images
    assert fd["noise"] > fd["n01"] > fd["gaussian"] > fd["mixture"] > fd["recon"] > fd["real"]
    assert fd["n01"] > 1.5 * fd["gaussian"]                                   # "much closer"
    assert fd["recon"] > 5 * fd["real"]                                       # "far above the real-image floor"
    # the confident fractions rank them the same way, but noise scores about as high as the reconstructions
    order = ["real", "recon", "mixture", "gaussian", "n01"]
    assert all(confident[a] > confident[b] for a, b in zip(order, order[1:]))
    assert abs(confident["noise"] - confident["recon"]) < 0.1
    # noise lands in one or two classes; the N(0, I) decodes avoid some classes
    noise_counts = torch.bincount(probs["noise"].argmax(1), minlength=10)
    assert noise_counts.topk(2).values.sum() > 0.9 * n
    assert (torch.bincount(probs["n01"].argmax(1), minlength=10) < 0.01 * n).any()


def test_nearest_training_image_distance_rewards_blur_not_realism(nb):
    x_train, x_test = nb["x_train"], nb["x_test"][:300]
    with torch.no_grad():
        recon = nb["shipped"](x_test)
    real = metrics.nearest_neighbours(x_test, x_train)[0].mean()
    mean_image = metrics.nearest_neighbours(x_train.mean(0, keepdim=True), x_train)[0].mean()
    assert abs(mean_image / real - 1) < 0.1                       # no garment at all, as close as a real one
    assert metrics.nearest_neighbours(recon, x_train)[0].mean() < 0.85 * real
