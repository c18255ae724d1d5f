"""Every claim notebooks 00 and 01 state as fact, recomputed at small scale, in the direction stated.

A claim whose direction can flip with the seed is not stated as fact by the notebooks (they print what
the numbers say instead); what they do state is checked here.
"""
import pytest
import torch

from lecture13 import autoregressive as ar
from lecture13 import data, metrics
from lecture13.checkpoints import pretrained, pretrained_samples
from lecture13.factorized import fit_bernoulli


# --------------------------------------------------------------------------- notebook 00
@pytest.fixture(scope="module")
def train_set():
    return data.load("train")


def _foreground_lost(images):
    foreground = (images > 0).flatten(1).sum(1).float()
    return 1 - data.binarize(images).flatten(1).sum(1) / foreground


def test_binarization_loses_dark_and_thin_garments_most(train_set):
    # 00: "binarization at 0.5 does not simply keep the silhouettes ... sandal straps, dark shirts
    # ... fall below the threshold; some images nearly vanish".
    lost = _foreground_lost(train_set.images)
    over_half = {name: (lost[train_set.labels == c] > 0.5).float().mean().item()
                 for c, name in enumerate(train_set.class_names)}
    overall = (lost > 0.5).float().mean().item()
    assert 0.15 < overall < 0.5                                   # a large minority of images
    assert over_half["Sandal"] > overall and over_half["Shirt"] > overall
    assert over_half["Sandal"] > over_half["Trouser"] and over_half["Shirt"] > over_half["Ankle boot"]
    assert lost.max() > 0.9                                       # some images nearly vanish


def test_without_smoothing_few_training_images_give_infinite_nll(train_set):
    # 00: "Without smoothing, small training sets leave pixels that were never on; every test image
    # that lights one of them gets probability zero ... With alpha = 1 every image gets a finite NLL".
    x = data.binarize(train_set.images[:20])
    test = data.binarize(data.load("test").images[:200])
    for alpha, infinite in ((0.0, True), (1.0, False)):
        theta = fit_bernoulli(x, alpha)
        nll = -(torch.xlogy(test, theta) + torch.xlogy(1 - test, 1 - theta)).flatten(1).sum(1)
        assert bool(torch.isinf(nll).any()) is infinite


# --------------------------------------------------------------------------- notebook 01
def _holes(model, row=14, col=14):
    return int(ar.blind_spot(ar.receptive_field(model, row, col), row).sum())


@pytest.mark.parametrize("layers", [2, 5, 10])
def test_pixelcnn_blind_spot_stays_at_every_depth_and_gated_has_none(layers):
    # 01: "the plain PixelCNN ignores part of the context it could use, at any depth"; "the blind spot
    # widens with it"; the Gated PixelCNN has no hole.
    torch.manual_seed(0)
    assert _holes(ar.PixelCNN(channels=8, layers=layers)) > 0
    assert _holes(ar.GatedPixelCNN(channels=8, layers=layers)) == 0


def test_pixelcnn_blind_spot_widens_with_depth():
    torch.manual_seed(0)
    holes = [_holes(ar.PixelCNN(channels=8, layers=n)) for n in (2, 5, 10)]
    assert holes == sorted(holes) and holes[0] < holes[-1]


def test_row_lstm_walks_the_rows_one_after_the_other():
    # 01: "The 28 rows are a sequential loop" — why the PixelRNN costs more per step (a structural
    # fact; the notebook measures the time ratio, tests never assert wall-clock times).
    rnn = ar.RowLSTM(4)
    calls = []
    rnn.state_to_state.register_forward_hook(lambda *_: calls.append(1))
    rnn(torch.zeros(2, 4, 28, 28))
    assert len(calls) == 28


def test_type_b_first_layer_is_not_a_distribution():
    # 01: "a single wrong mask gives a seemingly excellent loss and a model that is not a distribution".
    torch.manual_seed(0)
    cheat = ar.PixelCNN(channels=8, layers=2, kernel_size=3)
    cheat.input_conv.mask.copy_(ar.causal_mask(3, "B"))
    x = ar.all_binary_images(3, 3)
    optimizer = torch.optim.Adam(cheat.parameters(), lr=2e-2)
    for _ in range(100):
        loss = ar.nll_loss(cheat, x)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    with torch.no_grad():
        total = cheat.log_prob(x).exp().sum().item()
    assert loss.item() < 0.5 and total > 10                       # loss near zero, "probabilities" sum far above 1


def test_learning_curve_is_reproducible_and_the_nll_falls():
    x, _ = data.tensors("train", "binary")
    test, _ = data.tensors("test", "binary")
    build = lambda: ar.PixelCNN(channels=8, layers=2)             # noqa: E731
    a = ar.learning_curve(build, x, test[:32], steps=20, eval_every=10, seed=0)
    b = ar.learning_curve(build, x, test[:32], steps=20, eval_every=10, seed=0)
    assert a["nll"] == b["nll"] and a["steps"] == [0, 10, 20]
    assert a["nll"][-1] < a["nll"][0]
    with pytest.raises(ValueError, match="multiple of eval_every"):
        ar.learning_curve(build, x, test[:32], steps=15, eval_every=10)


@pytest.fixture(scope="module")
def confident():
    real = data.tensors("test", "binary")[0]
    out = {name: metrics.class_probabilities(pretrained_samples(name)) for name in ("pixelrnn", "pixelcnn", "gated_pixelcnn")}
    out["real"] = metrics.class_probabilities(real)
    out["factorized"] = metrics.class_probabilities(pretrained("factorized").sample(1000, generator=torch.Generator().manual_seed(0)))
    out["noise"] = metrics.class_probabilities(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    return out


def _sure(probs):
    return (probs.max(1).values > 0.9).float().mean().item()


def test_samples_score_below_real_binarized_images_and_the_controls_fool_the_classifier(confident):
    # 01: "The classifier's confidence is below that of real binarized images"; "the class histogram is
    # lopsided"; "the classifier is very sure of the factorized model's speckle and even of uniform noise".
    real = _sure(confident["real"])
    uniform = torch.full((10,), 0.1)
    spread_real = (torch.bincount(confident["real"].argmax(1), minlength=10) / len(confident["real"]) - uniform).abs().sum()
    for name in ("pixelrnn", "pixelcnn", "gated_pixelcnn"):
        assert _sure(confident[name]) < real - 0.1, name
        hist = torch.bincount(confident[name].argmax(1), minlength=10) / len(confident[name])
        assert (hist - uniform).abs().sum() > spread_real, name
    assert _sure(confident["factorized"]) > 0.5 and _sure(confident["noise"]) > 0.5


def test_shipped_samples_are_those_the_recorded_command_draws():
    from lecture13 import sampling

    for name in ("pixelcnn", "gated_pixelcnn256"):
        bank, record = pretrained_samples(name, with_meta=True)
        assert record["n"] == len(bank) == 1000 and f"samples {name}" in record["command"]
        # chunk 0 is recipe.sample(model, 250, seed); an autoregressive sampler's first k images
        # depend only on the first k images' uniforms, so two of them can be redrawn cheaply.
        again = sampling.sample_fast(pretrained(name), 2, generator=torch.Generator().manual_seed(record["seed"]))
        assert torch.allclose(again, bank[:2], atol=0.5 / 255)


def test_the_256_level_model_is_multimodal_at_an_edge_and_beats_independent_pixels():
    # 01, section 8: "its distribution has two bumps" at an ambiguous pixel; the 8-bit model's bits/dim
    # is far below independent per-pixel histograms on the same images.
    model = pretrained("gated_pixelcnn256")
    x = data.tensors("test", "unit")[0][:50]
    with torch.no_grad():
        probs = model.logits(x).softmax(1)
    both = torch.minimum(probs[:, :16].sum(1), probs[:, 64:].sum(1))        # mass near 0 and on the garment
    assert both.flatten(1).max(1).values.median() > 0.2
    train = data.load("train").images.flatten(1).long()
    pixel = torch.arange(784)
    counts = torch.bincount((pixel * 256 + train).flatten(), minlength=784 * 256).view(784, 256) + 1.0
    log_hist = (counts / counts.sum(1, keepdim=True)).log()
    nll_hist = -log_hist[pixel, (x.flatten(1) * 255).round().long()].sum(1).mean()
    with torch.no_grad():
        assert model.nll(x).mean() < 0.8 * nll_hist


@pytest.mark.slow
def test_at_the_notebooks_scale_the_plain_pixelcnn_is_ahead_of_the_gated_one():
    # 01, section 5 prints, from its runs, that after 48 steps of 16 images the plain PixelCNN is
    # ahead of the Gated PixelCNN of the same size in every seed (the blind spot's cost is not yet
    # visible). The same runs, minus the PixelRNN, give the same direction.
    x, _ = data.tensors("train", "binary")
    held_out = data.tensors("test", "binary")[0][-100:]
    final = {}
    for name, build in (("plain", lambda: ar.PixelCNN(channels=16, layers=5)),
                        ("gated", lambda: ar.GatedPixelCNN(channels=11, layers=5))):
        final[name] = torch.tensor([ar.learning_curve(build, x, held_out, 48, 48, batch_size=16, lr=3e-3, seed=s)["nll"][-1]
                                    for s in (0, 1, 2)])
    assert bool((final["gated"] > final["plain"]).all())
