#!/usr/bin/env bash
# The GPU machine check behind `make device-check`, made for the GPU machines lent to this project: Python 3.12 with
# JAX (CUDA), NVML and the scientific stack, but no TensorFlow, Keras, keras-tuner or Optuna, no network, and one
# command of at most 10 minutes. What they lack travels in a bundle folder prepared here by
# scripts/prepare_device_bundle.py (wheels and Fashion-MNIST's four files; default device-bundle/).
#
#   scripts/device_check.sh [OUT]            on the GPU machine (OUT defaults to results/gpu)
#   scripts/device_check.sh --dry-run OUT    here, on the CPU: the offline install into a fresh venv without
#                                            TensorFlow, and a two-trial JAX search (make device-check-dry-run)
#
# On the GPU machine: the GPU is checked through NVML (fmbench.telemetry, as rows record it) and JAX; without one it
# stops at once with one line on stderr, exit 2, having written nothing. Then, each step under its own time limit
# inside DEVICE_CHECK_SECONDS (default 540) and logged to OUT/STEP.log (its seconds in OUT/timings.txt): the bundle
# installed offline into $PY's environment (pip resolves fmbench's requirements against what the machine has and
# the bundle's wheels, nothing else), the data checked, device.txt written (GPU, driver, library versions), seed 1
# of the standard profile's baseline and 100-epoch cells, then the cnn profile's, on Keras's JAX backend (each
# resumable with --fmbench-resume: a time limit loses at most the cell it cut, and a second lease, carrying OUT
# back, continues), every row checked for GPU utilisation and memory, and the unit tests on JAX. A failed step
# makes the exit 1 (install and data failures stop at once); a matrix step cut by its time limit is no failure.
#
# Environment: PY (default python3: the machine's Python, the one with JAX), BUNDLE (default device-bundle),
# DEVICE_CHECK_SECONDS, TEST_WORKERS (pytest-xdist processes for the unit tests, default 8), TEST_ARGS (more pytest
# arguments for them), STAND_INS and VENV (dry run only: the stand-ins for the machine's packages, and where to make
# the fresh venv; default OUT/venv).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
if [ "${1-}" = "--dry-run" ]; then
    DRY_RUN=1
    shift
fi
OUT=$(realpath -m "${1:-$REPO/results/gpu}")
BUNDLE=$(realpath -m "${BUNDLE:-$REPO/device-bundle}")
PY=${PY:-python3}
TOTAL=${DEVICE_CHECK_SECONDS:-540}
cd "$REPO"
# Keras reads its backend once, at import; the JAX path imports no TensorFlow (fmbench.backend.select).
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false FMBENCH_DATA_DIR="$BUNDLE/fashion-mnist"
export PYTHONUNBUFFERED=1  # a step killed at its time limit still leaves its whole log

die() {
    echo "device-check: $*" >&2
    exit 2
}

# --- the GPU, before anything is written -----------------------------------------------------------------------
if [ "$DRY_RUN" -eq 0 ]; then
    gpus=$(PYTHONPATH="$REPO" "$PY" -c 'from fmbench import telemetry; print(", ".join(telemetry.gpu_names()))' \
        2>/dev/null) || die "$PY cannot import fmbench's telemetry (numpy, psutil); set PY to the machine's Python"
    [ -n "$gpus" ] ||
        die "no GPU visible through NVML (CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}); run it on a machine with an NVIDIA GPU and its driver"
    jax_gpus=$("$PY" -c 'import jax
try:
    print(len(jax.devices("gpu")))
except RuntimeError:
    print(0)' 2>/dev/null) || die "NVML sees $gpus but $PY cannot import jax; set PY to the Python that has JAX with CUDA"
    [ "$jax_gpus" -gt 0 ] || die "NVML sees $gpus but JAX sees no GPU; $PY needs JAX's CUDA build"
fi

# --- the bundle ------------------------------------------------------------------------------------------------
{ [ -f "$BUNDLE/MANIFEST.txt" ] && [ -d "$BUNDLE/wheels" ] && [ -d "$BUNDLE/fashion-mnist" ]; } ||
    die "no bundle in $BUNDLE: prepare it where pip reaches an index (scripts/prepare_device_bundle.py) and carry it"
bundle_python=$(sed -n 's/^python: //p' "$BUNDLE/MANIFEST.txt")
python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "no Python at PY=$PY"
[ "$bundle_python" = "$python" ] ||
    die "the bundle in $BUNDLE is for CPython $bundle_python, $PY is $python: prepare it with --python-version $python"
if [ "$DRY_RUN" -eq 1 ]; then
    STAND_INS=$(realpath -m "${STAND_INS:-$BUNDLE-stand-ins}")
    [ -f "$STAND_INS/requirements.txt" ] ||
        die "no stand-ins for the machine's packages in $STAND_INS (scripts/prepare_device_bundle.py --stand-ins)"
    VENV=$(realpath -m "${VENV:-$OUT/venv}")
    if [ -e "$VENV" ]; then
        [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists and is no venv: not replacing it"
        rm -rf "$VENV"
    fi
    "$PY" -m venv "$VENV" || die "$PY cannot make a venv"
    PY=$VENV/bin/python
fi

mkdir -p "$OUT"
: >>"$OUT/timings.txt"
failed=()

# step NAME CAP RESERVE [--cut-ok] COMMAND...: run COMMAND for at most CAP seconds, and never into the RESERVE
# seconds kept for the steps after it (SIGINT, then SIGKILL 20 s later), its output also in OUT/NAME.log. A step
# that fails is remembered (the exit is 1); --cut-ok: being stopped by the time limit is no failure.
step() {
    local name=$1 cap=$2 reserve=$3 cut_ok=0 start=$SECONDS status=0 limit
    shift 3
    if [ "$1" = "--cut-ok" ]; then
        cut_ok=1
        shift
    fi
    limit=$((TOTAL - SECONDS - reserve))
    [ "$limit" -le "$cap" ] || limit=$cap
    if [ "$limit" -lt 15 ]; then
        echo "device-check: $name: skipped, $((TOTAL - SECONDS)) s of $TOTAL left" | tee -a "$OUT/timings.txt"
        failed+=("$name (skipped)")
        return 0
    fi
    echo "device-check: $name (at most $limit s)"
    timeout -s INT -k 20 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "$name: stopped by its time limit after $((SECONDS - start)) s" | tee -a "$OUT/timings.txt"
        [ "$cut_ok" -eq 1 ] || failed+=("$name (time limit)")
    else
        echo "$name: $((SECONDS - start)) s, exit $status" | tee -a "$OUT/timings.txt"
        [ "$status" -eq 0 ] || failed+=("$name")
    fi
}

stop_if_failed() {
    [ "${#failed[@]}" -eq 0 ] || {
        echo "device-check: FAILED: ${failed[*]} (logs in $OUT/)" >&2
        exit 1
    }
}

# python -m MODULE, stoppable by the time limits' SIGINT. A job started in the background by a shell without job
# control inherits SIGINT ignored, so it is turned back into KeyboardInterrupt; and a KeyboardInterrupt raised while
# Keras's JAX fit loop waits for a step's result (np.array on a JAX array) is swallowed there and training goes on
# (seen here: three trials ran on through SIGINTs), so while fmbench's run protocol is still on the stack after the
# first, it is raised again every second. pytest then keeps every finished cell's rows and still writes its report.
PYM=("$PY" -c 'import os, runpy, signal, sys, threading, time


def inside_a_run():
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("fmbench", "protocol.py")):
            return True
        frame = frame.f_back
    return False


def again():
    time.sleep(1)
    while inside_a_run():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def interrupted(signum, frame):
    if interrupted.again is None:
        interrupted.again = threading.Thread(target=again, daemon=True)
        interrupted.again.start()
    raise KeyboardInterrupt


interrupted.again = None
signal.signal(signal.SIGINT, interrupted)
sys.argv.pop(0)
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)')

# pip install that sees no index and no configuration (no find-links, constraints or extra indexes of the machine it
# runs on): only the installed packages and the wheels in the folder given.
OFFLINE_PIP=(env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_REQUIREMENT
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    "$PY" -m pip install --no-index --no-cache-dir --quiet)

if [ "$DRY_RUN" -eq 1 ]; then
    # What the GPU machine has (JAX, numpy, pytest, ...), offline, from the stand-ins downloaded for this Python.
    step machine-stand-ins 300 0 "${OFFLINE_PIP[@]}" --find-links "$STAND_INS" -r "$STAND_INS/requirements.txt"
    stop_if_failed
fi
# fmbench from the working tree, its requirements resolved against what is installed and the bundle's wheels (which
# also hold the build backend): a requirement that neither meets fails here, naming it.
step install 240 0 "${OFFLINE_PIP[@]}" --find-links "$BUNDLE/wheels" -e "$REPO"
stop_if_failed
step data 60 0 "${PYM[@]}" fmbench data --data-dir "$FMBENCH_DATA_DIR"
stop_if_failed

versions() {
    "$PY" - <<'EOF'
import platform

import jax

from fmbench import backend

names = ("jax", "jaxlib", "keras", "keras-tuner", "optuna", "optuna-integration", "numpy")
print(f"python {platform.python_version()}; " + ", ".join(f"{n} {backend.installed_version(n)}" for n in names))
print(f"jax devices: {', '.join(str(d) for d in jax.devices())}")
EOF
}

if [ "$DRY_RUN" -eq 1 ]; then
    rm -rf "$OUT/run"  # this rehearsal's own rows, made afresh each time
    step search 240 0 "${PYM[@]}" fmbench run --backend jax --tuner random --max-trials 2 --profile smoke \
        --data-dir "$FMBENCH_DATA_DIR" --out "$OUT/run"
    step checks 60 0 "$PY" - "$OUT/run" <<'EOF'
import importlib.util
import sys

import pandas as pd

from fmbench import results

runs = results.read_runs(sys.argv[1])
assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed in the dry run's venv"
try:
    import tensorflow  # noqa: F401
except ImportError:
    print("import tensorflow: ImportError, as on the GPU machine")
else:
    sys.exit("device-check: `import tensorflow` worked in the dry run's venv")
row = runs.iloc[-1]
if row["keras_backend"] != "jax" or row["trials_completed"] != 2 or not pd.isna(row["error"]):
    sys.exit(f"device-check: the dry run's row is not two completed trials on jax: {row.to_dict()}")
print(f"dry run: {row['tuner']} on {row['keras_backend']}, {row['trials_completed']} trials, "
      f"test accuracy {row['test_accuracy']:.4f}, {row['search_seconds']:.1f} s of search")
EOF
    versions
    stop_if_failed
    echo "device-check: dry run passed: the bundle installs offline into $VENV, without TensorFlow, and a JAX search ran"
    exit 0
fi

mkdir -p "$OUT/standard" "$OUT/cnn"
{
    echo "gpu (NVML, as fmbench records it): $gpus"
    echo "jax sees $jax_gpus GPU(s); KERAS_BACKEND=$KERAS_BACKEND"
    versions
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
    fi
} >"$OUT/device.txt"
cat "$OUT/device.txt"

# Each step's reserve: what the steps after it need at least (cnn 90 s, the figures 30 s, the tests 120 s).
step standard 330 240 --cut-ok "${PYM[@]}" pytest benchmarks/test_matrix.py --benchmark-only --fmbench-backend jax \
    --fmbench-profile standard --fmbench-tuners random,hyperband,bayesian,tpe --fmbench-seeds 1 \
    -k "baseline or epochs100" --fmbench-out "$OUT/standard" --fmbench-resume \
    --benchmark-json "$OUT/standard/benchmark.json" -p no:cacheprovider
step cnn 180 150 --cut-ok "${PYM[@]}" pytest benchmarks/test_matrix.py --benchmark-only --fmbench-backend jax \
    --fmbench-profile cnn --fmbench-tuners random,hyperband --fmbench-seeds 1 \
    -k "baseline or epochs100" --fmbench-out "$OUT/cnn" --fmbench-resume \
    --benchmark-json "$OUT/cnn/benchmark.json" -p no:cacheprovider
step gpu-figures 30 120 "$PY" - "$OUT/standard" "$OUT/cnn" <<'EOF'
import sys
from pathlib import Path

from fmbench import results, resultset

checked = 0
for folder in sys.argv[1:]:
    if not (Path(folder) / results.RUNS_FILE).exists():
        print(f"{folder}: no finished cell yet (a later lease resumes it)")
        continue
    runs = results.read_runs(folder)
    checked += len(runs)
    failed = runs[resultset.failed_runs(runs)]
    empty = runs[runs[["gpu_util_mean", "gpu_util_max", "gpu_mem_peak_mb"]].isna().any(axis=1)]
    if len(failed) or len(empty) or not runs["gpu_util_max"].max() > 0 or not runs["gpu_mem_peak_mb"].max() > 0:
        sys.exit(f"device-check: {folder}: {len(failed)} failed, {len(empty)} of {len(runs)} runs without GPU "
                 f"figures, highest GPU utilisation {runs['gpu_util_max'].max()}%, "
                 f"peak memory {runs['gpu_mem_peak_mb'].max()} MB")
    backends = set(runs["keras_backend"])
    if backends != {"jax"}:
        sys.exit(f"device-check: {folder}: rows of Keras on {', '.join(sorted(backends))}, not jax alone")
    print(f"{folder}: {len(runs)} runs on jax with GPU figures: utilisation mean of means "
          f"{runs['gpu_util_mean'].mean():.1f}%, highest {runs['gpu_util_max'].max():.0f}%, "
          f"peak memory {runs['gpu_mem_peak_mb'].max():.0f} MB")
if not checked:
    sys.exit("device-check: no run finished in any profile's folder")
EOF
# The unit tests on JAX (tests that need TensorFlow skip themselves; tests/test_ci.py needs actionlint, which the
# machine lacks, and checks nothing of the GPU). TEST_ARGS adds pytest arguments (say, a --deselect).
# shellcheck disable=SC2086  # TEST_ARGS is split into arguments on purpose
step tests 240 0 "${PYM[@]}" pytest tests -q -p no:cacheprovider -m "not e2e" -n "${TEST_WORKERS:-8}" \
    --ignore tests/test_ci.py ${TEST_ARGS-}
stop_if_failed
echo "device-check: passed on $gpus; results in $OUT/"
