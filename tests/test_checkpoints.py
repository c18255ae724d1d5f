"""Checkpoints: a round trip keeps weights and metadata; anything else is refused with a clear error."""

import pytest
import torch

from lecture13 import checkpoints
from lecture13.checkpoints import CheckpointError, load_checkpoint, pretrained, save_checkpoint
from lecture13.data import sha256_file, tensors
from lecture13.factorized import FactorizedBernoulli

SIZE_LIMITS_MB = {"default": 5, "dcgan": 10, "classifier": 10}


@pytest.fixture
def saved(tmp_path):
    model = FactorizedBernoulli(shape=(1, 4, 4))
    torch.nn.init.normal_(model.logits)
    path = tmp_path / "m.pt"
    sha = save_checkpoint(model, path, seed=3, metrics={"nll": 1.5}, note="unit test")
    return model, path, sha


def test_round_trip_keeps_weights_config_and_meta(saved):
    model, path, sha = saved
    loaded, meta = load_checkpoint(path, sha256=sha)
    assert isinstance(loaded, FactorizedBernoulli) and loaded.config == {"shape": [1, 4, 4]}
    assert torch.equal(loaded.logits, model.logits)
    assert meta["seed"] == 3 and meta["metrics"] == {"nll": 1.5} and "torch" in meta["environment"]
    assert not loaded.training


def test_tampered_file_fails_its_checksum(saved):
    _, path, sha = saved
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="failed its checksum"):
        load_checkpoint(path, sha256=sha)


def test_truncated_file_is_refused_without_a_raw_traceback(saved):
    _, path, _ = saved
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)


def test_file_with_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": "FactorizedBernoulli", "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_other_files_are_not_checkpoints(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a lecture13 checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_weights_that_do_not_fit_are_refused(saved, tmp_path):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["config"] = {"shape": [1, 5, 5]}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "bad.pt")


def test_unregistered_models_cannot_be_saved(tmp_path):
    with pytest.raises(CheckpointError, match="not registered"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_unknown_pretrained_name_lists_what_exists():
    with pytest.raises(CheckpointError, match="no shipped checkpoint named 'nope'.*factorized"):
        pretrained("nope")


def test_every_shipped_checkpoint_matches_the_manifest_and_is_small():
    manifest = checkpoints.read_manifest()
    assert "factorized" in manifest
    for name, entry in manifest.items():
        path = checkpoints.WEIGHTS_DIR / entry["file"]
        assert sha256_file(path) == entry["sha256"], name
        limit = SIZE_LIMITS_MB.get(name, SIZE_LIMITS_MB["default"])
        assert path.stat().st_size < limit * 2**20, f"{name} is over {limit} MB"
        for key in ("command", "seed", "metrics"):
            assert key in entry, f"{name}: manifest lacks {key}"
        assert entry["command"].startswith("python -m lecture13 train"), name


def test_factorized_checkpoint_reproduces_its_recorded_nll():
    model, meta = pretrained("factorized", with_meta=True)
    x, _ = tensors("test", "binary")
    with torch.no_grad():
        measured = model.nll(x).double().mean().item()
    assert measured == pytest.approx(meta["metrics"]["embedded_test"]["nll_nats"], abs=0.01)
    assert meta["metrics"]["full_test"]["nll_nats"] == pytest.approx(383.1, abs=0.5)


def test_weights_table_lists_every_entry_with_its_headline_metric():
    planted = {
        "ar": {"model": "PixelCNN", "bytes": 184_433, "train_seconds": 2400, "device": "cpu",
               "metrics": {"full_test": {"nll_nats": 111.75, "bits_per_dim": 0.2056}}},
        "latent": {"model": "VAE", "bytes": 4_130_573, "train_seconds": 30, "device": "cuda",
                   "metrics": {"full_test": {"neg_elbo": 120.58, "iw_nll_k1000": 114.2, "iw_k": 1000}}},
        "probe": {"model": "FeatureClassifier", "bytes": 10, "metrics": {"full_test": {"accuracy": 0.9209}}},
        "odd": {"model": "Thing", "bytes": 10, "metrics": {}},
        "gan": {"model": "DCGAN", "bytes": 2_000_000, "train_seconds": 600, "metrics": {
            "embedded_test": {"frechet_distance": 70.04, "samples": 1000, "test_images": 2000},
            "full_test": {"frechet_distance": 71.0, "samples": 1000, "test_images": 10000}}},
        "flow": {"model": "RealNVP", "bytes": 170_000, "metrics": {"full_test": {
            "nll_nats": -0.4881, "bits_per_dim": -0.35, "true_nll_nats": -1.0781, "points": 100_000, "per": "point"}}},
        "noise": {"model": "DDPM", "bytes": 1_430_000, "metrics": {"full_test": {
            "nll_bound_nats": 2234.6, "bound_bits_per_dim": 4.112, "test_images": 200}}},
    }
    rows = checkpoints.weights_table(planted).splitlines()[2:]
    assert rows == [
        "| `ar` | PixelCNN | NLL 111.8 nats (0.206 bits/dim) | 0.18 MB | 40 min, cpu |",
        "| `flow` | RealNVP | NLL -0.488 nats per point (the true density's: -1.078; 100,000 test points) | 0.17 MB | < 1 min, cpu |",
        "| `gan` | DCGAN | Fréchet distance 70.0 (1,000 samples vs the 2,000 embedded test images: the course's "
        "sample-quality protocol) | 2.00 MB | 10 min, cpu |",
        "| `latent` | VAE | −L_1000 114.2 nats (−ELBO 120.6) | 4.13 MB | < 1 min, cuda |",
        "| `noise` | DDPM | NLL ≤ 2235 nats (≤ 4.112 bits/dim; variational bound on 200 8-bit grayscale test images) | 1.43 MB "
        "| < 1 min, cpu |",
        "| `odd` | Thing | — | 0.00 MB | < 1 min, cpu |",
        "| `probe` | FeatureClassifier | accuracy 92.09% | 0.00 MB | < 1 min, cpu |",
    ]
    shipped = checkpoints.weights_table()
    assert all(f"| `{name}` |" in shipped for name in checkpoints.available())


def test_every_shipped_sample_bank_matches_its_checksum_and_its_checkpoint():
    banks = {name: entry["samples"] for name, entry in checkpoints.read_manifest().items() if "samples" in entry}
    assert {"pixelcnn", "pixelrnn", "gated_pixelcnn", "gated_pixelcnn256"} <= set(banks)
    for name, record in banks.items():
        images = checkpoints.pretrained_samples(name)
        assert images.shape == (record["n"], 1, 28, 28) and 0 <= images.min() and images.max() <= 1, name
        assert record["command"].startswith(f"python -m lecture13 samples {name}"), name
        assert checkpoints.WEIGHTS_DIR.joinpath(record["file"]).stat().st_size < 2 * 2**20, name


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """A copy of the factorized checkpoint in a weights folder of its own, with a sample bank."""
    import shutil

    entry = checkpoints.read_manifest()["factorized"]
    shutil.copy(checkpoints.WEIGHTS_DIR / entry["file"], tmp_path / entry["file"])
    monkeypatch.setattr(checkpoints, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(checkpoints, "MANIFEST", tmp_path / "manifest.json")
    checkpoints.write_manifest_entry("factorized", entry)
    images = checkpoints.draw_samples("factorized", pretrained("factorized"), 300, seed=4)
    record = checkpoints.save_samples("factorized", images, seed=4, command="python -m lecture13 samples factorized")
    return tmp_path, images, record


def test_sample_bank_round_trip_in_chunks(weights_copy):
    _, images, record = weights_copy
    assert record["n"] == 300 and len(images) == 300
    loaded = checkpoints.pretrained_samples("factorized")
    assert torch.equal(loaded, images)                              # binary images survive the uint8 round trip
    # chunk j is recipe.sample(model, SAMPLE_CHUNK, seed + j): the second chunk can be redrawn alone
    second = checkpoints.draw_samples("factorized", pretrained("factorized"), 50, seed=5)
    assert torch.equal(loaded[checkpoints.SAMPLE_CHUNK:], second)


def test_tampered_or_stale_sample_bank_is_refused(weights_copy):
    folder, _, record = weights_copy
    path = folder / record["file"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="failed its checksum"):
        checkpoints.pretrained_samples("factorized")
    entry = checkpoints.read_manifest()["factorized"]
    checkpoints.write_manifest_entry("factorized", {**entry, "samples": {**record, "checkpoint_sha256": "0" * 64}})
    with pytest.raises(CheckpointError, match="drawn from another checkpoint"):
        checkpoints.pretrained_samples("factorized")
    with pytest.raises(CheckpointError, match="no shipped samples for 'nope'"):
        checkpoints.pretrained_samples("nope")
