"""Build the small real Fashion-MNIST subset shipped for tests, byte-reproducibly, from the full data.

Training file: 1,500 stratified images from the first 50,000 followed by 300 from the last 10,000, so the
split rule (last sixth = validation) gives the subset a validation part drawn from real validation images.
Test file: 400 stratified images from the test set.

    python scripts/make_subset.py [--source ../shared/data/fashion-mnist] [--out tests/data/fashion-mnist-subset]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from a checkout, without installing

from fmbench.data import (  # noqa: E402 - after sys.path holds the checkout
    FILES,
    MAGIC_IMAGES,
    MAGIC_LABELS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    load_raw,
    split_train_val,
    stratified_subset,
)

N_TRAIN, N_VAL, N_TEST = 1500, 300, 400
LIMIT_BYTES = 1_000_000


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 data as IDX, gzip'd with mtime=0 and no file name so the bytes never change."""
    magic = MAGIC_IMAGES if array.ndim == 3 else MAGIC_LABELS
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "fashion-mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "fashion-mnist-subset")
    args = parser.parse_args(argv)

    (x_all, y_all), (x_test, y_test) = load_raw(args.source)
    train, val = split_train_val(len(x_all))
    keep_train = stratified_subset(y_all[train], N_TRAIN)
    keep_val = stratified_subset(y_all[val], N_VAL) + val.start
    keep = np.concatenate([keep_train, keep_val])  # train part first, validation part last
    keep_test = stratified_subset(y_test, N_TEST)

    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {
        TRAIN_IMAGES: x_all[keep],
        TRAIN_LABELS: y_all[keep],
        TEST_IMAGES: x_test[keep_test],
        TEST_LABELS: y_test[keep_test],
    }
    for name in FILES:
        write_idx(args.out / name, outputs[name])
    licence = args.source / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, args.out / "LICENSE")

    total = 0
    for name in FILES:
        size = (args.out / name).stat().st_size
        total += size
        print(f"{size:>9,d}  {args.out / name}")
    print(f"{total:>9,d}  total ({len(keep)} train+val images, {len(keep_test)} test images)")
    if total >= LIMIT_BYTES:
        print(f"error: subset is {total:,d} bytes, over the {LIMIT_BYTES:,d} byte limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
