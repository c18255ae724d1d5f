"""The shipped autoencoder and VAEs load (sha256-checked), are small, and reproduce their recorded metrics."""
import pytest
import torch

from lecture13 import autoencoders, vae
from lecture13.checkpoints import WEIGHTS_DIR, pretrained, read_manifest
from lecture13.data import tensors

# Deterministic given the seed: only float summation order can differ between machines.
TOLERANCE_NATS = 0.05


@pytest.mark.parametrize("name,latent_dim", [("vae", 32), ("vae2d", 2), ("pixelvae", 32), ("pixelvae_no_free_bits", 32)])
def test_vae_checkpoint_reproduces_its_recorded_metrics(name, latent_dim):
    model, meta = pretrained(name, with_meta=True)
    assert isinstance(model, vae.VAE) and model.latent_dim == latent_dim and not model.training
    recorded = meta["metrics"]["embedded_test"]
    x, _ = tensors("test", "binary")
    measured = vae.likelihood_table(model, x, ks=(1, 10) if "iw_nll_k10" in recorded else (1,), seed=0)
    for key, value in measured.items():
        assert abs(value - recorded[key]) < TOLERANCE_NATS, (key, value, recorded[key])
    # the bounds are in the right order: -ELBO >= -L_K, and both far below the factorized baseline (382 nats)
    assert recorded["neg_elbo"] >= recorded[f"iw_nll_k{recorded['iw_k']}"] - 0.5
    assert recorded["neg_elbo"] < 250
    assert meta["train_subset"] == "full" and "python -m lecture13 train" in meta["command"]


def test_autoencoder_checkpoint_reproduces_its_recorded_error():
    model, meta = pretrained("autoencoder", with_meta=True)
    recorded = meta["metrics"]["embedded_test"]["l2_per_image"]
    x, _ = tensors("test", "unit")
    measured = autoencoders.reconstruction_error(model, x).double().mean().item()
    assert measured == pytest.approx(recorded, rel=1e-4)
    assert measured < 30          # far better than predicting the mean image (about 50 per image)


@pytest.mark.parametrize("name", ["autoencoder", "vae", "vae2d", "pixelvae", "pixelvae_no_free_bits"])
def test_checkpoint_files_are_small_and_listed(name):
    entry = read_manifest()[name]
    assert entry["file"] == f"{name}.pt"
    assert (WEIGHTS_DIR / entry["file"]).stat().st_size < 5_000_000
    assert "full_test" in entry["metrics"]


def test_the_pixelvae_uses_its_latent_and_beats_the_factorized_decoder():
    """Free bits kept z in use (no posterior collapse), and the causal window bought a tighter bound."""
    pixelvae, meta = pretrained("pixelvae", with_meta=True)
    plain = pretrained("vae")
    assert isinstance(pixelvae, vae.PixelVAE) and pixelvae.config["kernel_size"] == 7
    x, _ = tensors("test", "binary", limit=500)
    with torch.no_grad():
        mu, logvar = pixelvae.encode(x)
    assert vae.gaussian_kl(mu, logvar).mean() > 10                    # nats of information about x in z
    recorded, recorded_plain = meta["metrics"]["full_test"], read_manifest()["vae"]["metrics"]["full_test"]
    assert recorded["iw_nll_k1000"] < recorded_plain["iw_nll_k1000"] - 3
    assert recorded["neg_elbo"] >= recorded["iw_nll_k1000"]
