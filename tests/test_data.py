"""The data module: embedded subset offline, the full dataset, and clear errors for bad data."""
import gzip
import json
import shutil
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture13 import data

SYSTEM = data.SYSTEM_DIRS["fashion-mnist"]
GET_SYSTEM_COPY = ("needs the full Fashion-MNIST in {path} (missing: {missing}): install it with "
                   "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; CI installs it and fails on skips), "
                   "or deselect these tests with `-m 'not full_data'`")


def require_system_copy(directory: Path = SYSTEM) -> Path:
    """``directory`` when it holds all four IDX files of the full dataset, else skip with how to get them."""
    missing = [name for split in data.IDX_FILES.values() for name in split if not (directory / name).is_file()]
    if missing:
        pytest.skip(GET_SYSTEM_COPY.format(path=directory, missing=", ".join(missing)))
    return directory


@pytest.fixture
def system_copy() -> Path:
    """Debian's copy of the full Fashion-MNIST; outside CI its absence skips the test, with a hint."""
    return require_system_copy()


@pytest.fixture
def no_full_data(tmp_path, monkeypatch):
    """Nothing in the cache, no system copy, no network."""
    monkeypatch.setenv("LECTURE13_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", tmp_path / "no-system-copy")

    def offline(name, target):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_torchvision_download", offline)
    return tmp_path / "cache"


def test_embedded_subset_shapes_dtypes_and_classes():
    train, test = data.load("train"), data.load("test")
    assert train.images.shape == (10_000, 1, 28, 28) and test.images.shape == (2_000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.equal(train.labels.bincount(), torch.full((10,), 1_000))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 200))
    assert train.images.max() == 255 and train.images.min() == 0
    assert len(train.class_names) == 10


def test_embedded_subset_checksum_is_recorded_and_checked():
    info = json.loads(data.EMBEDDED_INFO.read_text())
    assert data.sha256_file(data.EMBEDDED_FILE) == info["sha256"]


def test_tampered_embedded_subset_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "subset.npz"
    raw = bytearray(data.EMBEDDED_FILE.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "EMBEDDED_FILE", copy)
    with pytest.raises(data.DataError, match="corrupt.*sha256"):
        data.load("test")


def test_missing_embedded_subset_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "EMBEDDED_FILE", tmp_path / "gone.npz")
    with pytest.raises(data.DataError, match="missing.*(Reinstall|build-subset)"):
        data.load("train")


def test_transforms():
    images = torch.tensor([[0, 127, 128, 255]], dtype=torch.uint8)
    assert torch.equal(data.binarize(images), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert torch.allclose(data.to_unit(images), images.float() / 255)
    signed = data.to_signed(images)
    assert signed.min() == -1.0 and signed.max() == 1.0
    x, y = data.tensors("test", "binary", limit=10)
    assert x.shape == (10, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="transform"):
        data.tensors("test", "sepia")


def test_loader_batches_and_seeded_shuffle():
    a = next(iter(data.loader("train", "unit", batch_size=32, seed=3)))
    b = next(iter(data.loader("train", "unit", batch_size=32, seed=3)))
    c = next(iter(data.loader("train", "unit", batch_size=32, seed=4)))
    assert a.shape == (32, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    x, y = next(iter(data.loader("test", "signed", batch_size=8, with_labels=True)))
    assert x.shape == (8, 1, 28, 28) and y.shape == (8,)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load("train", name="cifar")
    with pytest.raises(ValueError, match="Unknown split"):
        data.load("validation")
    with pytest.raises(ValueError, match="Only Fashion-MNIST ships"):
        data.load("train", name="mnist", subset="embedded")


def test_mnist_is_one_argument_away(no_full_data, monkeypatch):
    """name="mnist" goes to the full data and, when no copy is found, to the torchvision download."""
    calls = []

    def fake_download(name, target):
        calls.append(name)
        _write_idx_pair(target, "test", 10_000)

    monkeypatch.setattr(data, "_torchvision_download", fake_download)
    test = data.load("test", name="mnist")
    assert calls == ["mnist"] and test.images.shape == (10_000, 1, 28, 28) and test.name == "mnist"
    assert test.class_names[3] == "3"
    data.load("test", name="mnist")  # now cached: no second download
    assert calls == ["mnist"]


@pytest.mark.full_data
def test_full_dataset_from_the_system_copy(system_copy, monkeypatch, tmp_path):
    monkeypatch.setenv("LECTURE13_DATA", str(tmp_path))  # empty cache: must fall through to the system copy
    train = data.load("train", subset="full", download=False)
    test = data.load("test", subset="full", download=False)
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.source == str(system_copy)
    assert torch.equal(train.labels.bincount(), torch.full((10,), 6_000))


@pytest.mark.full_data
def test_embedded_subset_is_rebuilt_byte_for_byte(system_copy, tmp_path):
    out = tmp_path / "subset.npz"
    info = data.build_embedded_subset(system_copy, out=out)
    assert info["sha256"] == json.loads(data.EMBEDDED_INFO.read_text())["sha256"]
    full = data.read_idx(system_copy / "t10k-images-idx3-ubyte.gz")
    with np.load(out) as archive:
        assert np.array_equal(archive["test_images"], full[archive["test_indices"]])


@pytest.mark.full_data
def test_cache_directory_comes_first(system_copy, monkeypatch, tmp_path):
    cached = tmp_path / "fashion-mnist"
    cached.mkdir()
    for name in data.IDX_FILES["test"]:
        shutil.copy(system_copy / name, cached / name)
    monkeypatch.setenv("LECTURE13_DATA", str(tmp_path))
    assert data.locate_full("fashion-mnist", "test", download=False) == cached


def test_missing_full_dataset_lists_every_way_to_get_it(no_full_data):
    with pytest.raises(data.DataError) as err:
        data.load("train", subset="full")
    message = str(err.value)
    assert "not found" in message and "network is unreachable" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(no_full_data / "fashion-mnist") in message
    assert "subset='embedded'" in message


def _write_idx(path: Path, array: np.ndarray, truncate: int = 0) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(payload[: len(payload) - truncate] if truncate else payload)


def _write_idx_pair(directory: Path, split: str, n: int, fill: int = 0) -> None:
    """A generated split of ``n`` images, every pixel ``fill`` (so a test can tell copies apart)."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = data.IDX_FILES[split]
    _write_idx(directory / images, np.full((n, 28, 28), fill))
    _write_idx(directory / labels, np.arange(n) % 10)


def _fake_full_test_split(directory: Path, truncate: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 28, 28)), truncate)
    _write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(10_000))


def test_truncated_idx_file_names_the_file(no_full_data):
    _fake_full_test_split(no_full_data / "fashion-mnist", truncate=1000)
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated or corrupt"):
        data.load("test", subset="full")


def test_cut_gzip_stream_names_the_file(no_full_data):
    _fake_full_test_split(no_full_data / "fashion-mnist")
    path = no_full_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated or corrupt"):
        data.load("test", subset="full")


def test_not_an_idx_file(no_full_data):
    _fake_full_test_split(no_full_data / "fashion-mnist")
    with gzip.open(no_full_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"<html>404 not found</html>")
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.load("test", subset="full")


def test_a_well_formed_fake_split_loads(no_full_data):
    _fake_full_test_split(no_full_data / "fashion-mnist")
    assert data.load("test", subset="full").images.shape == (10_000, 1, 28, 28)


# --------------------------------------------------------------------------- the search order, on generated files
CACHE, SYSTEM_COPY, DOWNLOADED = 1, 2, 3   # the pixel value of the images in each place
SMALL = {"train": 30, "test": 20}


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty cache directory, an empty system copy and a download that writes generated files
    and records its calls, with small "full" splits: the search order without the real data."""
    for split, n in SMALL.items():
        monkeypatch.setitem(data.FULL_SIZES, split, n)
    monkeypatch.setenv("LECTURE13_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", tmp_path / "system")
    downloads = []

    def download(name, target):
        downloads.append(name)
        for split, n in SMALL.items():
            _write_idx_pair(target, split, n, fill=DOWNLOADED)

    monkeypatch.setattr(data, "_torchvision_download", download)
    return SimpleNamespace(cache=tmp_path / "cache" / "fashion-mnist", system=tmp_path / "system", downloads=downloads)


def _where(split: str) -> tuple[str, int]:
    loaded = data.load(split, subset="full")
    assert loaded.images.shape == (SMALL[split], 1, 28, 28)
    values = loaded.images.unique().tolist()
    assert len(values) == 1, values
    return loaded.source, values[0]


def test_the_cache_comes_before_the_system_copy(places):
    for split, n in SMALL.items():
        _write_idx_pair(places.cache, split, n, fill=CACHE)
        _write_idx_pair(places.system, split, n, fill=SYSTEM_COPY)
    assert _where("test") == (str(places.cache), CACHE)
    assert _where("train") == (str(places.cache), CACHE)
    assert places.downloads == []


def test_the_system_copy_comes_before_a_download(places):
    for split, n in SMALL.items():
        _write_idx_pair(places.system, split, n, fill=SYSTEM_COPY)
    _write_idx_pair(places.cache, "test", SMALL["test"], fill=CACHE)   # the cache holds the test split only
    (places.cache / data.IDX_FILES["train"][0]).write_bytes(b"")     # and half of the training split
    assert data.locate_full("fashion-mnist", "train", download=False) == places.system
    assert _where("train") == (str(places.system), SYSTEM_COPY)
    assert _where("test") == (str(places.cache), CACHE)
    assert places.downloads == []


def test_a_download_comes_last_and_goes_into_the_cache(places):
    assert _where("test") == (str(places.cache), DOWNLOADED)
    assert places.downloads == ["fashion-mnist"]
    assert _where("train") == (str(places.cache), DOWNLOADED)
    assert places.downloads == ["fashion-mnist"]   # cached: not downloaded again


def test_no_copy_and_no_download_allowed_is_a_clear_error(places):
    with pytest.raises(data.DataError, match=r"not found, and downloading was not allowed") as err:
        data.load("test", subset="full", download=False)
    assert f"  - {places.cache}\n  - {places.system}\n" in str(err.value)   # the places, in search order
    assert places.downloads == []


def test_a_missing_system_copy_skips_with_how_to_get_it(tmp_path):
    """Outside CI the tests marked full_data skip with this hint (in CI a skip is a failure)."""
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install dataset-fashion-mnist.*-m 'not full_data'"):
        require_system_copy(tmp_path)
    for split, n in SMALL.items():
        _write_idx_pair(tmp_path, split, n)
    assert require_system_copy(tmp_path) == tmp_path
