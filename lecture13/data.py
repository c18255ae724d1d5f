"""Image data for the course: Fashion-MNIST (default) or MNIST, offline first.

Where the images come from, in order:

1. ``subset="embedded"`` (the default in every notebook): 10,000 training and 2,000 test
   images that ship inside the package (``lecture13/data/fashion_mnist_subset.npz``), checked
   against a recorded sha256. No file system search, no network.
2. ``subset="full"``: the whole dataset, looked up in
   a. the cache directory (``$LECTURE13_DATA``, else ``~/.cache/lecture13``),
   b. the system copy that Debian's ``dataset-fashion-mnist`` installs
      (``/usr/share/datasets/fashion-mnist``),
   c. a torchvision download into the cache directory (needs internet).

Images are returned as ``uint8`` tensors of shape (N, 1, 28, 28) with ``int64`` labels; the
transforms below turn them into what each model family wants:

* :func:`to_unit`     floats in [0, 1] (autoencoders),
* :func:`binarize`    {0, 1} by a *static* threshold at 0.5 (PixelCNN, VAE). The threshold is
  fixed, not sampled, so the binarized test set is the same for everyone and NLL numbers in
  nats are comparable across notebooks and models.
* :func:`to_signed`   floats in [-1, 1] (GANs, whose generator ends in tanh).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
EMBEDDED_FILE = PACKAGE_DATA / "fashion_mnist_subset.npz"
EMBEDDED_INFO = PACKAGE_DATA / "fashion_mnist_subset.json"
SYSTEM_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist"), "mnist": Path("/usr/share/datasets/mnist")}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FULL_SIZES = {"train": 60_000, "test": 10_000}
DATASETS = ("fashion-mnist", "mnist")
CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
}
# How the embedded subset is drawn from the full dataset (see build_embedded_subset).
SUBSET_PER_CLASS = {"train": 1_000, "test": 200}
BINARIZE_THRESHOLD = 0.5


class DataError(RuntimeError):
    """The requested images are missing, truncated or corrupt. The message says how to fix it."""


@dataclass(frozen=True)
class ImageSet:
    """A split of a dataset: ``images`` uint8 (N, 1, 28, 28), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    source: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.name]


# --------------------------------------------------------------------------- transforms
def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 in {0..255} -> float32 in [0, 1]."""
    return images.float() / 255.0


def binarize(images: torch.Tensor, threshold: float = BINARIZE_THRESHOLD) -> torch.Tensor:
    """Static binarization: pixel = 1 where intensity/255 > threshold, else 0 (float32)."""
    x = to_unit(images) if images.dtype == torch.uint8 else images
    return (x > threshold).float()


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [-1, 1], the range of a tanh generator."""
    return to_unit(images) * 2.0 - 1.0


TRANSFORMS = {"unit": to_unit, "binary": binarize, "signed": to_signed, "uint8": lambda x: x}


# --------------------------------------------------------------------------- file formats
def cache_dir() -> Path:
    """Where full datasets are cached: ``$LECTURE13_DATA`` or ``~/.cache/lecture13``."""
    env = os.environ.get("LECTURE13_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lecture13"


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_idx(path: Path | str) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of (Fashion-)MNIST, with clear errors.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then one
    big-endian uint32 per dimension, then the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path} is truncated or corrupt ({err}). Delete it and get the dataset "
                        f"again (see lecture13.data: `python -m lecture13 data --help`).") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of uint8 values (bad header). "
                        "Delete it and get the dataset again.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header is incomplete. Delete it and get the dataset again.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path} is truncated or corrupt: the header promises {expected} values of shape "
                        f"{shape}, the file holds {len(raw) - header}. Delete it and get the dataset again.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_split_dir(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = IDX_FILES[split]
    images = read_idx(directory / image_file)
    labels = read_idx(directory / label_file)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise DataError(f"{directory}: {image_file} holds {images.shape} images but {label_file} "
                        f"holds {labels.shape[0]} labels; the copy is inconsistent. Get the dataset again.")
    if images.shape[0] != FULL_SIZES[split]:
        raise DataError(f"{directory / image_file} holds {images.shape[0]} images, expected "
                        f"{FULL_SIZES[split]} for the full {split} split. Get the dataset again.")
    return images, labels


def _has_split(directory: Path, split: str) -> bool:
    return all((directory / name).exists() for name in IDX_FILES[split])


def _torchvision_download(name: str, target: Path) -> None:
    """Download through torchvision into ``target`` (IDX .gz files); needs internet."""
    import torchvision  # imported lazily: only this path needs it

    cls = torchvision.datasets.FashionMNIST if name == "fashion-mnist" else torchvision.datasets.MNIST
    root = target / "torchvision"
    for train in (True, False):
        cls(root=str(root), train=train, download=True)
    raw = root / cls.__name__ / "raw"
    target.mkdir(parents=True, exist_ok=True)
    for split in IDX_FILES.values():
        for filename in split:
            src = raw / filename
            if src.exists() and not (target / filename).exists():
                (target / filename).write_bytes(src.read_bytes())


def locate_full(name: str = "fashion-mnist", split: str = "train", download: bool = True) -> Path:
    """Return the directory holding the full ``split`` of ``name``, searching in order:
    the cache directory, the system copy, a torchvision download. Raises DataError with every
    way to get the data when none works."""
    _check_name_split(name, split)
    candidates = [cache_dir() / name, SYSTEM_DIRS[name]]
    for directory in candidates:
        if _has_split(directory, split):
            return directory
    tried = "\n".join(f"  - {d}" for d in candidates)
    if download:
        try:
            _torchvision_download(name, cache_dir() / name)
            if _has_split(cache_dir() / name, split):
                return cache_dir() / name
        except Exception as err:  # no internet, a proxy, a server down: all end the same way
            reason = f"the torchvision download failed ({type(err).__name__}: {err})"
        else:
            reason = "the torchvision download gave no IDX files"
    else:
        reason = "downloading was not allowed (download=False)"
    debian = "  - sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; puts it in /usr/share/datasets)\n" \
        if name == "fashion-mnist" else ""
    raise DataError(
        f"The full {name} dataset ({split} split) was not found, and {reason}.\nLooked in:\n{tried}\n"
        f"Ways to get it:\n{debian}"
        f"  - connect to the internet and run: python -m lecture13 data --dataset {name} --download\n"
        f"  - copy the four IDX .gz files ({', '.join(IDX_FILES['train'] + IDX_FILES['test'])}) into "
        f"{cache_dir() / name} (or set LECTURE13_DATA to a folder that holds {name}/)\n"
        "  - or use the embedded subset, which needs nothing: load(subset='embedded')")


def has_full(name: str = "fashion-mnist", split: str = "train") -> bool:
    """Whether the full ``split`` is on this machine (never downloads)."""
    try:
        locate_full(name, split, download=False)
        return True
    except DataError:
        return False


# --------------------------------------------------------------------------- the embedded subset
def _embedded_info() -> dict:
    return json.loads(EMBEDDED_INFO.read_text())


def _load_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    if not EMBEDDED_FILE.exists():
        raise DataError(f"The embedded subset {EMBEDDED_FILE} is missing from this installation. "
                        "Reinstall the package (pip install -e .) or rebuild it with "
                        "`python -m lecture13 data --build-subset` (needs the full dataset).")
    expected = _embedded_info()["sha256"]
    actual = sha256_file(EMBEDDED_FILE)
    if actual != expected:
        raise DataError(f"The embedded subset {EMBEDDED_FILE} is corrupt: sha256 {actual[:12]}… "
                        f"differs from the recorded {expected[:12]}…. Reinstall the package or rebuild "
                        "it with `python -m lecture13 data --build-subset`.")
    with np.load(EMBEDDED_FILE) as archive:
        return archive[f"{split}_images"], archive[f"{split}_labels"]


def subset_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` images of every class, in file order (so always the same ones)."""
    chosen = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    return np.sort(np.concatenate(chosen))


def build_embedded_subset(source_dir: Path | str | None = None, out: Path | str = EMBEDDED_FILE) -> dict:
    """Rebuild the embedded subset from the full Fashion-MNIST: the first 1,000 training and the
    first 200 test images of each class, in file order. Deterministic: the same files give the
    same bytes (np.savez_compressed of fixed arrays) and so the same sha256."""
    source = Path(source_dir) if source_dir else None
    arrays = {}
    for split in ("train", "test"):
        directory = source or locate_full("fashion-mnist", split)
        images, labels = _read_split_dir(directory, split)
        keep = subset_indices(labels, SUBSET_PER_CLASS[split])
        arrays[f"{split}_images"] = np.ascontiguousarray(images[keep])
        arrays[f"{split}_labels"] = np.ascontiguousarray(labels[keep])
        arrays[f"{split}_indices"] = keep.astype(np.int32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # zipfile stamps each member with the current time; write through a fixed-date zip instead.
    _save_npz_deterministic(out, arrays)
    info = {
        "dataset": "fashion-mnist",
        "licence": "MIT (Zalando Research, https://github.com/zalandoresearch/fashion-mnist)",
        "selection": "first 1000 training and first 200 test images of each class, in file order",
        "train": int(len(arrays["train_images"])),
        "test": int(len(arrays["test_images"])),
        "sha256": sha256_file(out),
    }
    if out == EMBEDDED_FILE:
        EMBEDDED_INFO.write_text(json.dumps(info, indent=2) + "\n")
    return info


def _save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            member = zipfile.ZipInfo(f"{key}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(member, buffer.getvalue(), compresslevel=9)


# --------------------------------------------------------------------------- public API
def _check_name_split(name: str, split: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")
    if split not in IDX_FILES:
        raise ValueError(f"Unknown split {split!r}; choose 'train' or 'test'.")


def load(split: str = "train", name: str = "fashion-mnist", subset: str | None = None,
         download: bool = True) -> ImageSet:
    """Load one split as uint8 images (N, 1, 28, 28) and int64 labels.

    ``name``: ``"fashion-mnist"`` (default) or ``"mnist"`` — the one argument to switch; MNIST
    does not ship with the package, so it comes from the cache or a torchvision download.
    ``subset``: ``"embedded"`` (ships with the package, Fashion-MNIST only; the default for it)
    or ``"full"`` (the default for MNIST).
    """
    _check_name_split(name, split)
    if subset is None:
        subset = "embedded" if name == "fashion-mnist" else "full"
    if subset == "embedded":
        if name != "fashion-mnist":
            raise ValueError(f"Only Fashion-MNIST ships inside the package; use subset='full' for {name!r}.")
        images, labels = _load_embedded(split)
        source = f"embedded subset ({EMBEDDED_FILE.name})"
    elif subset == "full":
        directory = locate_full(name, split, download=download)
        images, labels = _read_split_dir(directory, split)
        source = str(directory)
    else:
        raise ValueError(f"Unknown subset {subset!r}; choose 'embedded' or 'full'.")
    return ImageSet(images=torch.from_numpy(np.array(images)).unsqueeze(1),
                    labels=torch.from_numpy(np.array(labels)).long(), name=name, split=split, source=source)


def tensors(split: str = "train", transform: str = "binary", limit: int | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of a split with a transform applied: ``"binary"``, ``"unit"``,
    ``"signed"`` or ``"uint8"``. ``limit`` keeps the first ``limit`` images."""
    if transform not in TRANSFORMS:
        raise ValueError(f"Unknown transform {transform!r}; choose one of {tuple(TRANSFORMS)}.")
    data = load(split, **kwargs)
    images, labels = data.images, data.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return TRANSFORMS[transform](images), labels


def loader(split: str = "train", transform: str = "binary", batch_size: int = 128, shuffle: bool | None = None,
           limit: int | None = None, seed: int = 0, with_labels: bool = False, **kwargs) -> DataLoader:
    """A DataLoader over one split. Batches are image tensors (or (image, label) pairs with
    ``with_labels=True``). Shuffling (on by default for 'train') uses its own seeded generator."""
    images, labels = tensors(split, transform, limit=limit, **kwargs)
    dataset = TensorDataset(images, labels) if with_labels else TensorDataset(images)
    shuffle = (split == "train") if shuffle is None else shuffle
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=None if with_labels else _first)


def _first(batch):
    return torch.stack([item[0] for item in batch])
