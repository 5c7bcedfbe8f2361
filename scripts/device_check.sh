#!/usr/bin/env bash
# The GPU machine check behind `make device-check`, for a machine lent for about 15 minutes: first the full-size
# cells no CPU here can afford in seconds (the `standard` profile's baseline and 100-epoch searches, then the `cnn`
# profile's), each step under a time limit so the lease is never overrun, then a check that every row written
# carries GPU utilisation and memory, then the unit tests on the GPU. Rows go to the folder given as its argument
# (default results/gpu), with device.txt naming the GPU; each matrix step resumes (--fmbench-resume), so a
# second lease continues where the first stopped and a time limit loses at most the cell it cut.
# Fashion-MNIST comes from FMBENCH_DATA_DIR when set, else Keras's loader (which downloads it).
# Without a visible GPU it stops at once: one line on stderr, exit 2. A failed step exits 1.
set -euo pipefail

PY=${PY:-python3}
OUT=${1:-results/gpu}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

die() {
    echo "device-check: $*" >&2
    exit 2
}

gpus=$("$PY" -c 'from fmbench import telemetry; print(", ".join(telemetry.gpu_names()))' 2>/dev/null) ||
    die "$PY cannot import fmbench; run make setup first, or set PY to the Python that has it"
[ -n "$gpus" ] ||
    die "no GPU visible through NVML (CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}); run it on a machine with an NVIDIA GPU and its driver"
tf_gpus=$("$PY" -c 'import tensorflow as tf; print(len(tf.config.list_physical_devices("GPU")))' 2>/dev/null) ||
    die "$PY cannot import tensorflow; run make setup first"
[ "$tf_gpus" -gt 0 ] ||
    die "NVML sees $gpus but TensorFlow sees no GPU; install its CUDA build with: $PY -m pip install -e '.[gpu]'"

mkdir -p "$OUT/standard" "$OUT/cnn"
{
    echo "gpu (NVML, as fmbench records it): $gpus"
    echo "tensorflow: $("$PY" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null), sees $tf_gpus GPU(s)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
    fi
} >"$OUT/device.txt"
cat "$OUT/device.txt"

step() {  # step NAME COMMAND...: run it, its output also in $OUT/NAME.log, its seconds in $OUT/timings.txt
    local name=$1 start=$SECONDS
    shift
    echo "device-check: $name"
    "$@" 2>&1 | tee "$OUT/$name.log"
    echo "$name: $((SECONDS - start)) s" | tee -a "$OUT/timings.txt"
}

: >>"$OUT/timings.txt"
# cells MINUTES PROFILE TUNERS: seed 1's baseline and 100-epoch cells, stopped by SIGINT after MINUTES (the rows
# of every finished cell are kept; the next lease resumes).
cells() {
    local minutes=$1 profile=$2 tuners=$3 status=0
    timeout -s INT -k 30 "$((minutes * 60))" "$PY" -m pytest benchmarks/test_matrix.py --benchmark-only \
        --fmbench-profile "$profile" --fmbench-tuners "$tuners" --fmbench-seeds 1 -k "baseline or epochs100" \
        --fmbench-out "$OUT/$profile" --fmbench-resume --benchmark-json "$OUT/$profile/benchmark.json" \
        -p no:cacheprovider || status=$?
    [ "$status" -eq 0 ] || [ "$status" -eq 124 ]  # 124: the time limit, not a failure
}
step standard cells 6 standard random,hyperband,bayesian,tpe
step cnn cells 3 cnn random,hyperband
step gpu-figures "$PY" - "$OUT/standard" "$OUT/cnn" <<'EOF'
import sys

from fmbench import results

for folder in sys.argv[1:]:
    runs = results.read_runs(folder)
    failed = runs[results.failed_runs(runs)]
    empty = runs[runs[["gpu_util_mean", "gpu_util_max", "gpu_mem_peak_mb"]].isna().any(axis=1)]
    if len(failed) or len(empty) or not runs["gpu_util_max"].max() > 0 or not runs["gpu_mem_peak_mb"].max() > 0:
        sys.exit(f"device-check: {folder}: {len(failed)} failed, {len(empty)} of {len(runs)} runs without GPU "
                 f"figures, highest GPU utilisation {runs['gpu_util_max'].max()}%, "
                 f"peak memory {runs['gpu_mem_peak_mb'].max()} MB")
    print(f"{folder}: {len(runs)} runs with GPU figures: utilisation mean of means "
          f"{runs['gpu_util_mean'].mean():.1f}%, highest {runs['gpu_util_max'].max():.0f}%, "
          f"peak memory {runs['gpu_mem_peak_mb'].max():.0f} MB")
EOF
step tests timeout -s INT 180 "$PY" -m pytest tests -q -p no:cacheprovider -m "not e2e" -n 4
echo "device-check: passed on $gpus; results in $OUT/"
