"""The shipped autoregressive checkpoints: checksum, provenance, and their recorded test NLL.

Tolerance: the recorded embedded-subset NLL is reproduced within 0.01 nats per image (it is the
same computation on the same CPU arithmetic; the margin only absorbs summation-order effects
across BLAS builds)."""
import pytest
import torch

from lecture13 import autoregressive as ar
from lecture13.checkpoints import WEIGHTS_DIR, pretrained, read_manifest
from lecture13.recipes import get_recipe
from lecture13.data import tensors
from lecture13.sampling import complete

NAMES = ("pixelcnn", "gated_pixelcnn", "pixelrnn")
TOLERANCE_NATS = 0.01


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_reproduces_its_recorded_nll(name):
    model, meta = pretrained(name, with_meta=True)            # sha256-checked, weights_only
    assert isinstance(model, ar.AutoregressiveModel)
    entry = read_manifest()[name]
    assert (WEIGHTS_DIR / entry["file"]).stat().st_size < 5 * 2**20
    assert meta["command"].startswith("python -m lecture13 train " + name) and "--ship" in meta["command"]
    assert meta["train_subset"] == "full" and meta["seed"] == 0
    recorded = meta["metrics"]["embedded_test"]["nll_nats"]
    assert "full_test" in meta["metrics"]
    measured = ar.evaluate_nll(model, "embedded")
    assert measured["nll_nats"] == pytest.approx(recorded, abs=TOLERANCE_NATS)
    assert measured["nll_nats"] < 0.5 * read_manifest()["factorized"]["metrics"]["embedded_test"]["nll_nats"]


@pytest.mark.parametrize("name", NAMES)
def test_trained_model_completes_identically_with_both_samplers(name):
    """On trained weights and full-size images the cached sampler still matches the naive one
    (completing the bottom 5 rows of two test images: the naive sampler runs the whole network once
    per pixel, so more rows would only cost time; the cache is exercised from row 23 on)."""
    model = pretrained(name)
    given = tensors("test", "binary", limit=2)[0]
    fast = complete(model, given, known_rows=23, generator=torch.Generator().manual_seed(0))
    naive = complete(model, given, known_rows=23, generator=torch.Generator().manual_seed(0), fast=False)
    assert torch.equal(fast, naive)
    assert torch.equal(fast[:, :, :23], given[:, :, :23]) and not torch.equal(fast[:, :, 23:], given[:, :, 23:])
    images = get_recipe(name).sample(model, 1, 0)
    assert images.shape == (1, 1, 28, 28) and set(images.unique().tolist()) <= {0.0, 1.0}


def test_the_8bit_checkpoint_reproduces_its_recorded_nll_and_samples_intensities():
    model, meta = pretrained("gated_pixelcnn256", with_meta=True)
    assert isinstance(model, ar.GatedPixelCNN) and model.levels == 256
    assert meta["command"].startswith("python -m lecture13 train gated_pixelcnn256") and "--ship" in meta["command"]
    assert meta["train_subset"] == "full" and meta["seed"] == 0 and meta["steps"] == 2000
    measured = ar.evaluate_nll(model, "embedded")                 # on the 8-bit test images
    assert measured["nll_nats"] == pytest.approx(meta["metrics"]["embedded_test"]["nll_nats"], abs=TOLERANCE_NATS)
    assert measured["bits_per_dim"] < 4.0                          # independent per-pixel histograms: about 4.6
    given = tensors("test", "unit", limit=2)[0]
    fast = complete(model, given, known_rows=26, generator=torch.Generator().manual_seed(0))
    naive = complete(model, given, known_rows=26, generator=torch.Generator().manual_seed(0), fast=False)
    assert torch.equal(fast, naive) and torch.equal(fast[:, :, :26], given[:, :, :26])
    levels = (fast * 255).round()
    assert torch.allclose(fast * 255, levels, atol=1e-3) and len(levels.unique()) > 2   # grey levels, not binary
