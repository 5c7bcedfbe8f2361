#!/usr/bin/env bash
# The GPU machine check behind `make device-check`: the tests, the smoke matrix (whose every row must
# carry GPU utilisation and memory), and one standard-profile cell (the baseline, seed 1, full data).
# Everything goes to the folder given as its argument (default results/gpu-smoke), with device.txt naming the GPU.
# Fashion-MNIST comes from FMBENCH_DATA_DIR when set, else Keras's loader (which downloads it).
# Without a visible GPU it stops at once: one line on stderr, exit 2. A failed step exits 1.
set -euo pipefail

PY=${PY:-python3}
OUT=${1:-results/gpu-smoke}
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

mkdir -p "$OUT/smoke" "$OUT/standard"
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

: >"$OUT/timings.txt"
step tests "$PY" -m pytest tests -q -p no:cacheprovider
step smoke "$PY" -m pytest benchmarks/test_matrix.py --benchmark-only --fmbench-profile smoke \
    --fmbench-out "$OUT/smoke" --benchmark-json "$OUT/smoke/benchmark.json" -p no:cacheprovider
step smoke-gpu-figures "$PY" - "$OUT/smoke" <<'EOF'
import sys

from fmbench import results

runs = results.read_runs(sys.argv[1])
failed = runs[results.failed_runs(runs)]
empty = runs[runs[["gpu_util_mean", "gpu_util_max", "gpu_mem_peak_mb"]].isna().any(axis=1)]
if len(failed) or len(empty) or not runs["gpu_util_max"].max() > 0 or not runs["gpu_mem_peak_mb"].max() > 0:
    sys.exit(f"device-check: smoke runs: {len(failed)} failed, {len(empty)} of {len(runs)} without GPU figures, "
             f"highest GPU utilisation {runs['gpu_util_max'].max()}%, peak memory {runs['gpu_mem_peak_mb'].max()} MB")
print(f"{len(runs)} smoke runs with GPU figures: utilisation mean of means {runs['gpu_util_mean'].mean():.1f}%, "
      f"highest {runs['gpu_util_max'].max():.0f}%, peak memory {runs['gpu_mem_peak_mb'].max():.0f} MB")
EOF
step standard "$PY" -m pytest benchmarks/test_matrix.py::test_baseline --benchmark-only --fmbench-profile standard \
    --fmbench-seeds 1 --fmbench-out "$OUT/standard" --benchmark-json "$OUT/standard/benchmark.json" -p no:cacheprovider
echo "device-check: passed on $gpus; results in $OUT/"
