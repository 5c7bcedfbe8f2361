"""Fashion-MNIST: Keras's loader or a folder of IDX .gz files; validation; the fixed split; subsets."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmbench.spec import DataSizes

ENV_VAR = "FMBENCH_DATA_DIR"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# IDX magic = 0x0000, type byte 0x08 (unsigned byte), number of dims.
MAGIC_IMAGES, MAGIC_LABELS = 2051, 2049
NUM_CLASSES = 10
_FIX = f"re-download it or point --data-dir / {ENV_VAR} at a complete copy"


class DataError(ValueError):
    """Unusable data: the one-line message names the file and the fix."""


@dataclass(frozen=True)
class Split:
    """Train / validation / test arrays: x float32 in [0, 1] of shape (n, 28, 28), y int64 labels 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def resolve_data_dir(value: str | Path | None) -> Path | None:
    """The --data-dir value, else $FMBENCH_DATA_DIR, else None (meaning: use Keras's downloader)."""
    chosen = value if value not in (None, "") else os.environ.get(ENV_VAR) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "--data-dir" if value not in (None, "") else ENV_VAR
        raise DataError(
            f"{path}: data directory (from {source}) does not exist; "
            f"point --data-dir / {ENV_VAR} at a folder holding {', '.join(FILES)}"
        )
    return path


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one gzip'd IDX file (images 2051 -> (n, 28, 28), labels 2049 -> (n,)) as uint8, strictly."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise DataError(
            f"{path}: file is missing; point --data-dir / {ENV_VAR} at a folder holding {', '.join(FILES)}"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut stream is EOFError
        raise DataError(f"{path}: not a readable gzip file ({_one_line(exc)}); {_FIX}") from None
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes); {_FIX}")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (MAGIC_IMAGES, MAGIC_LABELS):
        raise DataError(
            f"{path}: bad magic number {magic} (expected {MAGIC_IMAGES} for images or "
            f"{MAGIC_LABELS} for labels), not an IDX ubyte file; {_FIX}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header}); {_FIX}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28; {_FIX}")
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - header
    # Exact length both ways: a short file is a broken download, a long one is a wrong or concatenated file.
    if got < expected:
        raise DataError(f"{path}: truncated (expected {expected} bytes of {_kind(ndim)}, got {got}); {_FIX}")
    if got > expected:
        raise DataError(f"{path}: {got - expected} trailing bytes after {expected} bytes of {_kind(ndim)}; {_FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_raw(data_dir: Path | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) as uint8, from data_dir's IDX files or Keras's downloader."""
    if data_dir is None:
        train, test = _load_keras()
        names: tuple[str, ...] = tuple(f"keras fashion_mnist {name}" for name in FILES)
    else:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(
                f"{data_dir}: data directory does not exist; "
                f"point --data-dir / {ENV_VAR} at a folder holding {', '.join(FILES)}"
            )
        names = tuple(str(data_dir / name) for name in FILES)
        train = (read_idx(names[0]), read_idx(names[1]))
        test = (read_idx(names[2]), read_idx(names[3]))
    for (x, y), (x_name, y_name) in ((train, names[:2]), (test, names[2:])):
        if x.ndim != 3:
            raise DataError(f"{x_name}: holds labels, not images (swapped files?); {_FIX}")
        if y.ndim != 1:
            raise DataError(f"{y_name}: holds images, not labels (swapped files?); {_FIX}")
        if len(x) != len(y):
            raise DataError(f"{y_name}: {len(y)} labels for {len(x)} images in {Path(x_name).name}; {_FIX}")
        if len(y) and int(y.max()) >= NUM_CLASSES:
            raise DataError(f"{y_name}: label {int(y.max())} out of range 0..{NUM_CLASSES - 1}; {_FIX}")
    return train, test


def _load_keras() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    # Imported here so that reading a data dir (and the tests) never pays for starting TensorFlow.
    import keras

    try:
        return keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # keras's get_file raises bare Exception for URL failures, OSError for files
        raise DataError(
            f"could not download Fashion-MNIST ({_one_line(exc)}); pass --data-dir DIR or set "
            f"{ENV_VAR} to a folder with the four IDX .gz files ({', '.join(FILES)})"
        ) from None


def split_train_val(n_train: int) -> tuple[slice, slice]:
    """The fixed rule: validation is the last sixth of the training images (60,000 -> the last 10,000)."""
    n_val = n_train // 6
    return slice(0, n_train - n_val), slice(n_train - n_val, n_train)


def stratified_subset(y: np.ndarray, n: int | None) -> np.ndarray:
    """Sorted indices of n items, round-robin over classes in file order: no randomness, so every run agrees.

    Items are ordered by (rank of the item within its class, class) and the first n taken, so class counts
    differ by at most one while every class has items left. n None or >= len(y) gives every index.
    """
    y = np.asarray(y)
    if n is not None and n < 1:
        raise DataError(f"subset size must be >= 1, got {n}")
    if n is None or n >= len(y):
        return np.arange(len(y))
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank[members] = np.arange(len(members))
    order = np.lexsort((y, rank))  # last key is primary: rank first, then class
    return np.sort(order[:n])


def load(data_dir: Path | None, sizes: DataSizes = DataSizes()) -> Split:
    """Load, split (last sixth of train = validation) and subset each split by `sizes`, scaled to [0, 1].

    A size larger than its split is not an error: the whole split is used, so a small data dir (such as the
    shipped test subset) works with any profile.
    """
    (x_all, y_all), (x_test, y_test) = load_raw(data_dir)
    train, val = split_train_val(len(x_all))
    parts = (
        (x_all[train], y_all[train], sizes.train),
        (x_all[val], y_all[val], sizes.val),
        (x_test, y_test, sizes.test),
    )
    out: list[np.ndarray] = []
    for x, y, n in parts:
        keep = stratified_subset(y, n)
        out += [x[keep].astype(np.float32) / np.float32(255.0), y[keep].astype(np.int64)]
    return Split(*out)


def _kind(ndim: int) -> str:
    return "pixels" if ndim == 3 else "labels"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
