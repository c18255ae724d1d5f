"""The shipped autoregressive checkpoints: checksum, provenance, and their recorded test NLL.

Tolerance: the recorded embedded-subset NLL is reproduced within 0.01 nats per image (it is the
same computation on the same CPU arithmetic; the margin only absorbs summation-order effects
across BLAS builds).

The recorded NLL is a mean over the 2,000 embedded test images. Recomputing all of them costs the
Gated PixelCNNs a minute each on one thread, so the tests check it in two halves: the per-image NLLs
of the shipped weights (``recorded_nll_per_image.npz`` beside this file, tied to each checkpoint's
sha256) average to the recorded number, and the model reproduces them image by image on every 10th
test image (200). Reshipping a model means rewriting that file: ``python tests/test_autoregressive_checkpoints.py``."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture13 import autoregressive as ar
from lecture13.checkpoints import WEIGHTS_DIR, pretrained, read_manifest
from lecture13.recipes import get_recipe
from lecture13.data import tensors
from lecture13.sampling import complete

NAMES = ("pixelcnn", "gated_pixelcnn", "pixelrnn")
TOLERANCE_NATS = 0.01
PER_IMAGE = Path(__file__).with_name("recorded_nll_per_image.npz")
CHECKED = slice(None, None, 10)     # every 10th embedded test image: 200, all classes (the file is ordered)


@torch.no_grad()
def per_image_nll(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model.nll(x) for x in images.split(batch_size)]).double()


def embedded_test_images(model) -> torch.Tensor:
    return tensors("test", ar.image_transform(model), subset="embedded")[0]


def recorded_per_image(name: str) -> torch.Tensor:
    """The per-image NLLs of the shipped ``name`` (2,000 values), refusing a record of other weights."""
    with np.load(PER_IMAGE) as saved:
        if str(saved[f"{name}_sha256"]) != read_manifest()[name]["sha256"]:
            pytest.fail(f"{PER_IMAGE.name} holds the per-image NLLs of an older {name} checkpoint: rewrite it with "
                        "`python tests/test_autoregressive_checkpoints.py`")
        return torch.from_numpy(saved[name])


def check_the_recorded_nll(model, name: str, recorded: float) -> float:
    """The per-image record averages to ``recorded``; the model reproduces it on the checked images.
    Returns the mean NLL of the checked images."""
    record = recorded_per_image(name)
    assert len(record) == 2000 and float(record.mean()) == pytest.approx(recorded, abs=TOLERANCE_NATS)
    measured = per_image_nll(model, embedded_test_images(model)[CHECKED])
    assert torch.allclose(measured, record[CHECKED], atol=TOLERANCE_NATS), \
        f"{name}: largest per-image difference {float((measured - record[CHECKED]).abs().max()):.4f} nats"
    return float(measured.mean())


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
    check_the_recorded_nll(model, name, recorded)
    assert recorded < 0.5 * read_manifest()["factorized"]["metrics"]["embedded_test"]["nll_nats"]


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
    recorded = meta["metrics"]["embedded_test"]["nll_nats"]
    check_the_recorded_nll(model, "gated_pixelcnn256", recorded)   # on the 8-bit test images
    assert meta["metrics"]["embedded_test"]["bits_per_dim"] < 4.0   # independent per-pixel histograms: about 4.6
    given = tensors("test", "unit", limit=2)[0]
    fast = complete(model, given, known_rows=26, generator=torch.Generator().manual_seed(0))
    naive = complete(model, given, known_rows=26, generator=torch.Generator().manual_seed(0), fast=False)
    assert torch.equal(fast, naive) and torch.equal(fast[:, :, :26], given[:, :, :26])
    levels = (fast * 255).round()
    assert torch.allclose(fast * 255, levels, atol=1e-3) and len(levels.unique()) > 2   # grey levels, not binary


def test_the_per_image_check_catches_other_weights():
    """A PixelCNN whose weights moved slightly fails the image-by-image check, though its mean may not."""
    model, meta = pretrained("pixelcnn", with_meta=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    with pytest.raises(AssertionError, match="per-image difference"):
        check_the_recorded_nll(model, "pixelcnn", meta["metrics"]["embedded_test"]["nll_nats"])


def write_per_image_records() -> None:
    """Recompute every shipped autoregressive model's per-image NLLs on the 2,000 embedded test images."""
    arrays = {}
    for name in NAMES + ("gated_pixelcnn256",):
        model, meta = pretrained(name, with_meta=True)
        values = per_image_nll(model, embedded_test_images(model))
        recorded = meta["metrics"]["embedded_test"]["nll_nats"]
        assert abs(float(values.mean()) - recorded) < TOLERANCE_NATS, (name, float(values.mean()), recorded)
        arrays[name], arrays[f"{name}_sha256"] = values.numpy(), np.array(read_manifest()[name]["sha256"])
        print(f"{name}: mean {float(values.mean()):.4f} nats (recorded {recorded:.4f})", flush=True)
    np.savez_compressed(PER_IMAGE, **arrays)


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
    write_per_image_records()
