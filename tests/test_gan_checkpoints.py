"""The shipped classifier and DCGAN load, pass their checksums and reproduce their recorded metrics."""
import pytest

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
