"""The shipped classifier and DCGAN load, pass their checksums and reproduce their recorded metrics."""
import pytest
import torch

from lecture13 import checkpoints, gan, metrics
from lecture13.classifier import _evaluate as evaluate_classifier


def test_classifier_checkpoint_reproduces_its_recorded_accuracy():
    model, meta = checkpoints.pretrained("classifier", with_meta=True)
    recorded = meta["metrics"]["embedded_test"]["accuracy"]
    assert evaluate_classifier(model, "embedded")["accuracy"] == pytest.approx(recorded, abs=1e-3)  # ≤ 2 of 2000 images
    assert meta["metrics"]["full_test"]["accuracy"] >= 0.90
    assert checkpoints.read_manifest()["classifier"]["bytes"] < 10 * 2**20


def test_dcgan_checkpoint_reproduces_its_recorded_sample_quality():
    model, meta = checkpoints.pretrained("dcgan", with_meta=True)
    recorded = meta["metrics"]["embedded_test"]
    measured = gan.quality_report(model, "embedded")
    assert recorded["samples"] == metrics.QUALITY_SAMPLES == 1000 and recorded["test_images"] == 2000
    assert measured["frechet_distance"] == pytest.approx(recorded["frechet_distance"], rel=1e-3)
    assert measured["confident"] == pytest.approx(recorded["confident"], abs=2e-3)
    assert checkpoints.read_manifest()["dcgan"]["bytes"] < 10 * 2**20
    d, g = (sum(p.numel() for p in net.parameters()) for net in (model.discriminator, model.generator))
    assert model.config["d_width"] == 2 * model.config["width"] and d > 0.2 * g   # a balanced discriminator


def test_dcgan_beats_the_factorized_model_on_frechet_distance():
    images = gan.dcgan_samples(checkpoints.pretrained("dcgan"), 2000, seed=0)
    factorized = checkpoints.pretrained("factorized").sample(2000)
    test = gan.tensors("test", "unit")[0]
    f_test = metrics.image_features(test)
    assert metrics.frechet_distance(metrics.image_features(images), f_test) < \
        metrics.frechet_distance(metrics.image_features(factorized), f_test)


def test_the_dcgan_snapshot_after_an_epoch_is_the_model_a_shorter_run_ships(tmp_path):
    """The shipped DCGAN was taken from a longer run's snapshot after an epoch: it must be exactly the
    model that `python -m lecture13 train dcgan --max-steps N` (N = the steps up to that epoch) trains."""
    from lecture13.checkpoints import load_checkpoint

    options = {"epochs": 2, "batch_size": 2500, "lr": 2e-4, "seed": 0, "subset": "embedded", "progress": False}
    # Each run as in a fresh process: the classifier that scores each epoch is loaded during the first
    # epoch's evaluation (building it draws from the global RNG, in both runs alike).
    metrics._CLASSIFIER = None
    torch.manual_seed(0)
    long_run = gan.DCGAN(z_dim=8, width=4, d_width=8)
    gan._fit(long_run, {**options, "snapshot": str(tmp_path / "snap.pt")})       # snapshot after each epoch
    snapshot_after_epoch_2, _ = load_checkpoint(tmp_path / "snap.pt")
    metrics._CLASSIFIER = None
    torch.manual_seed(0)
    short_run = gan.DCGAN(z_dim=8, width=4, d_width=8)
    gan._fit(short_run, {**options, "epochs": 20, "max_steps": 8})                 # 2 epochs of 4 steps
    for key, value in short_run.state_dict().items():
        assert torch.equal(value, snapshot_after_epoch_2.state_dict()[key]), key
