"""fmbench.data on the shipped real subset: loading, the split rule, subsets, and every way a file can be bad."""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fmbench import data
from fmbench.data import DataError, load, load_raw, read_idx, resolve_data_dir, split_train_val, stratified_subset
from fmbench.spec import DataSizes

SUBSET = Path(__file__).parent / "data" / "fashion-mnist-subset"


@pytest.fixture(scope="module")
def split() -> data.Split:
    return load(SUBSET, DataSizes())


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the subset that a test may damage."""
    out = tmp_path / "fmnist"
    out.mkdir()
    for name in data.FILES:
        shutil.copyfile(SUBSET / name, out / name)
    return out


def _rewrite(path: Path, payload: bytes) -> None:
    path.write_bytes(gzip.compress(payload, mtime=0))


def _assert_one_line_naming(excinfo: pytest.ExceptionInfo, path: Path) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message, message


# --- the shipped subset ------------------------------------------------------------------------------------------


def test_subset_loads_with_expected_shapes_types_and_classes(split: data.Split) -> None:
    for name, n in (("train", 1500), ("val", 300), ("test", 400)):
        x, y = getattr(split, f"x_{name}"), getattr(split, f"y_{name}")
        assert x.shape == (n, 28, 28) and y.shape == (n,), name
        assert x.dtype == np.float32, name
        assert np.issubdtype(y.dtype, np.integer), name
        assert 0.0 <= x.min() and x.max() <= 1.0, name
        assert x.max() > 0.99, f"{name}: not scaled by 255, or blank images"
        assert set(np.unique(y).tolist()) == set(range(10)), name
        # Real Fashion-MNIST averages ~0.286 after scaling; noise, zeros or unscaled bytes land far away.
        assert abs(float(x.mean()) - 0.286) < 0.02, f"{name}: mean {x.mean():.4f}"


def test_subset_is_small_enough_to_ship() -> None:
    assert sum((SUBSET / name).stat().st_size for name in data.FILES) < 1_000_000
    assert (SUBSET / "LICENSE").is_file() and "MIT" in (SUBSET / "LICENSE").read_text(encoding="utf-8")


# --- the split rule ----------------------------------------------------------------------------------------------


def test_validation_is_the_last_sixth_of_the_training_file(split: data.Split) -> None:
    raw_x = read_idx(SUBSET / data.TRAIN_IMAGES)
    raw_y = read_idx(SUBSET / data.TRAIN_LABELS)
    sixth = len(raw_x) // 6
    np.testing.assert_array_equal(np.rint(split.x_val * 255).astype(np.uint8), raw_x[-sixth:])
    np.testing.assert_array_equal(split.y_val, raw_y[-sixth:])
    np.testing.assert_array_equal(np.rint(split.x_train * 255).astype(np.uint8), raw_x[:-sixth])
    np.testing.assert_array_equal(split.y_train, raw_y[:-sixth])


def test_split_of_the_full_training_set_is_the_last_10000() -> None:
    train, val = split_train_val(60_000)
    assert (train.start, train.stop) == (0, 50_000)
    assert (val.start, val.stop) == (50_000, 60_000)


def test_sizes_subset_each_split_and_oversized_means_whole_split() -> None:
    small = load(SUBSET, DataSizes(train=100, val=50, test=20))
    assert (len(small.x_train), len(small.x_val), len(small.x_test)) == (100, 50, 20)
    assert np.bincount(small.y_train, minlength=10).tolist() == [10] * 10
    big = load(SUBSET, DataSizes(train=10**6, val=10**6, test=10**6))
    assert (len(big.x_train), len(big.x_val), len(big.x_test)) == (1500, 300, 400)


# --- stratified_subset -------------------------------------------------------------------------------------------


def test_stratified_subset_is_deterministic_balanced_and_sorted() -> None:
    y = np.random.default_rng(0).integers(0, 10, size=5000)
    first, second = stratified_subset(y, 237), stratified_subset(y.copy(), 237)
    np.testing.assert_array_equal(first, second)
    assert len(first) == 237 and len(np.unique(first)) == 237
    assert np.all(np.diff(first) > 0)
    counts = np.bincount(y[first], minlength=10)
    assert counts.max() - counts.min() <= 1, counts


def test_stratified_subset_takes_items_in_file_order_round_robin() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    # rank 0 of classes 0, 1, 2 (indices 0, 3, 5), then rank 1 of class 0 (index 1).
    assert stratified_subset(y, 4).tolist() == [0, 1, 3, 5]
    # A class that runs out leaves the rest to the others rather than failing.
    assert stratified_subset(y, 5).tolist() == [0, 1, 3, 4, 5]


def test_stratified_subset_edges() -> None:
    y = np.array([3, 1, 3, 1])
    assert stratified_subset(y, None).tolist() == [0, 1, 2, 3]
    assert stratified_subset(y, 99).tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError):
        stratified_subset(y, 0)


# --- damaged files -----------------------------------------------------------------------------------------------


def test_truncated_payload(copy: Path) -> None:
    path = copy / data.TRAIN_IMAGES
    _rewrite(path, gzip.decompress(path.read_bytes())[:1000])
    with pytest.raises(DataError, match="truncated") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_truncated_gzip_stream(copy: Path) -> None:
    path = copy / data.TEST_IMAGES
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="gzip") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_trailing_bytes(copy: Path) -> None:
    path = copy / data.TEST_LABELS
    _rewrite(path, gzip.decompress(path.read_bytes()) + b"\x00" * 7)
    with pytest.raises(DataError, match="trailing") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_wrong_magic_number(copy: Path) -> None:
    path = copy / data.TRAIN_LABELS
    raw = gzip.decompress(path.read_bytes())
    _rewrite(path, struct.pack(">I", 1234) + raw[4:])
    with pytest.raises(DataError, match="magic") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_wrong_image_size(copy: Path) -> None:
    path = copy / data.TEST_IMAGES
    raw = gzip.decompress(path.read_bytes())
    n = struct.unpack(">I", raw[4:8])[0]
    _rewrite(path, struct.pack(">IIII", 2051, n, 14, 56) + raw[16:])  # same byte count, wrong shape
    with pytest.raises(DataError, match="28x28") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_label_out_of_range(copy: Path) -> None:
    path = copy / data.TRAIN_LABELS
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[8 + 42] = 12
    _rewrite(path, bytes(raw))
    with pytest.raises(DataError, match="12") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_label_count_mismatch(copy: Path) -> None:
    path = copy / data.TEST_LABELS
    raw = gzip.decompress(path.read_bytes())
    n = struct.unpack(">I", raw[4:8])[0]
    _rewrite(path, struct.pack(">II", 2049, n - 1) + raw[8:-1])
    with pytest.raises(DataError, match="labels for") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_missing_file_names_it_and_lists_the_four(copy: Path) -> None:
    path = copy / data.TEST_LABELS
    path.unlink()
    with pytest.raises(DataError, match="missing") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)
    for name in data.FILES:
        assert name in str(excinfo.value)
    assert "FMBENCH_DATA_DIR" in str(excinfo.value)


def test_non_gzip_garbage(copy: Path) -> None:
    path = copy / data.TRAIN_IMAGES
    path.write_bytes(b"<html>404 Not Found</html>" * 10)
    with pytest.raises(DataError, match="gzip") as excinfo:
        load(copy, DataSizes())
    _assert_one_line_naming(excinfo, path)


def test_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as excinfo:
        load(missing, DataSizes())
    _assert_one_line_naming(excinfo, missing)
    with pytest.raises(DataError, match="does not exist") as excinfo:
        resolve_data_dir(missing)
    _assert_one_line_naming(excinfo, missing)


# --- where the data comes from -----------------------------------------------------------------------------------


def test_resolve_data_dir_honours_env_and_cli_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv(data.ENV_VAR, str(SUBSET))
    assert resolve_data_dir(None) == SUBSET
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(DataError, match=data.ENV_VAR):
        resolve_data_dir(None)


def test_keras_download_failure_becomes_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline() -> None:
        raise Exception("URL fetch failure on https://example/train-labels-idx1-ubyte.gz: None -- [Errno -3]")

    # A stand-in keras module: the real import starts TensorFlow, and the real call would try the network.
    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(fashion_mnist=types.SimpleNamespace(load_data=offline)))
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(DataError, match="could not download Fashion-MNIST") as excinfo:
        load_raw(None)
    message = str(excinfo.value)
    assert "\n" not in message and "--data-dir" in message and "URL fetch failure" in message


def test_keras_loader_result_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = read_idx(SUBSET / data.TEST_IMAGES), read_idx(SUBSET / data.TEST_LABELS)
    bad = y.copy()
    bad[0] = 10
    fake = types.SimpleNamespace(
        datasets=types.SimpleNamespace(fashion_mnist=types.SimpleNamespace(load_data=lambda: ((x, y), (x, bad))))
    )
    monkeypatch.setitem(sys.modules, "keras", fake)
    with pytest.raises(DataError, match="out of range"):
        load_raw(None)
