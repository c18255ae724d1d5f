"""What notebooks 05 and 06 state as fact, recomputed with the shipped models at the course's protocol
(1,000 samples each), asserting the direction the notebooks state. Their other sentences are written
from the numbers by code whose logic tests/test_comparison.py checks on planted numbers."""
import pytest
import torch

from lecture13 import checkpoints, comparison, data, gan, metrics


@pytest.fixture(scope="module")
def reference():
    return metrics.test_features()


@pytest.fixture(scope="module")
def references(reference):
    return metrics.quality_references(metrics.QUALITY_SAMPLES, draws=3, reference=reference)


@pytest.fixture(scope="module")
def dcgan_samples():
    return gan.dcgan_samples(checkpoints.pretrained("dcgan"), metrics.QUALITY_SAMPLES, seed=0)


def test_protocol_numbers_are_the_same_in_the_manifest_and_in_notebooks_05_and_06(dcgan_samples, reference):
    """05 prints the recorded number and scores `gan.dcgan_samples(dcgan, 1000, seed=0)`; 06 scores
    `comparison.quality_samples("dcgan", ...)`: all three must be one number."""
    model, meta = checkpoints.pretrained("dcgan", with_meta=True)
    in_05 = metrics.protocol_scores(dcgan_samples, reference)["frechet"]
    in_06 = comparison.quality(comparison.quality_samples("dcgan", model, shipped=True)[0], reference)["frechet"]
    assert in_05 == pytest.approx(in_06, rel=1e-6)
    assert in_05 == pytest.approx(meta["metrics"]["embedded_test"]["frechet_distance"], rel=1e-3)


def test_gan_samples_beat_the_vae_decoder_means_and_every_other_family(dcgan_samples, reference, references):
    """06: "sharper than a VAE" and "GANs give the best samples", beyond 3× the metric's noise."""
    dcgan = metrics.protocol_scores(dcgan_samples, reference)["frechet"]
    vae = checkpoints.pretrained("vae")
    means = metrics.protocol_scores(vae.sample(1000, torch.Generator().manual_seed(0)), reference)["frechet"]
    gated = metrics.protocol_scores(checkpoints.pretrained_samples("gated_pixelcnn"), reference)["frechet"]
    assert dcgan < means - 3 * references["real"]["frechet_std"]
    assert dcgan < gated - 3 * references["binarized"]["frechet_std"]


def test_real_references_order_and_the_confidence_caveat(reference, references):
    """06: binarization alone costs Fréchet distance; speckle fools the classifier more than real binary images."""
    assert references["real"]["frechet"] < references["binarized"]["frechet"] / 5
    assert references["real"]["confident"] > references["binarized"]["confident"]
    speckle = checkpoints.pretrained("factorized").sample(1000, torch.Generator().manual_seed(0))
    assert metrics.protocol_scores(speckle, reference)["confident"] > references["binarized"]["confident"]


def test_memorization_check_sees_planted_copies_and_the_dcgan_is_no_copier(dcgan_samples):
    """05: the positive control (training images + noise) is far closer to the training set than test
    images; the DCGAN's samples are not (searched here in the embedded training images)."""
    pool = data.tensors("train", "unit")[0]
    g = torch.Generator().manual_seed(0)
    copies = (pool[:200] + 0.03 * torch.randn(200, 1, 28, 28, generator=g)).clamp(0, 1)
    d = {name: metrics.nearest_neighbours(x, pool)[0][:, 0].median()
         for name, x in (("copies", copies), ("test", data.tensors("test", "unit")[0][:200]), ("dcgan", dcgan_samples[:200]))}
    assert d["copies"] < d["test"] / 2
    assert d["dcgan"] > 2 * d["copies"]


def test_shipped_dcgan_beats_a_short_run_and_the_factorized_model(dcgan_samples, reference):
    """05's bar chart: the shipped DCGAN ahead of the factorized model (and of an untrained DCGAN)."""
    shipped = metrics.protocol_scores(dcgan_samples, reference)["frechet"]
    speckle = checkpoints.pretrained("factorized").sample(1000, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    untrained = gan.dcgan_samples(gan.DCGAN(d_width=64), 1000, seed=0)
    assert shipped < metrics.protocol_scores(speckle, reference)["frechet"]
    assert shipped < metrics.protocol_scores(untrained, reference)["frechet"]


def test_precision_and_recall_tell_realism_from_coverage():
    """05's reading of precision/recall: a collapsed set keeps precision and loses recall; a displaced one loses both."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(400, 6, generator=g), torch.randn(400, 6, generator=g)
    same = metrics.precision_recall(real, fake)
    collapsed = metrics.precision_recall(real, 0.3 * fake)
    displaced = metrics.precision_recall(real, fake + 4)
    assert same["precision"] > 0.7 and same["recall"] > 0.7
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < same["recall"] / 2
    assert displaced["precision"] < 0.1 and displaced["recall"] < 0.1
