#!/usr/bin/env bash
# The headline's full-size run on fresh seeds (docs/results.md), one seed at a time, resumable.
#   FMBENCH_DATA_DIR=DIR scripts/fresh_seeds_run.sh OUT FIRST LAST [BACKEND]
# (DIR holds Fashion-MNIST's four .gz files, e.g. ../shared/data/fashion-mnist; without it Keras downloads them.)
# Runs the standard profile's 100-epoch cells of baseline, random, Hyperband, Bayesian and TPE for seeds
# FIRST..LAST into OUT, each seed a pytest session with --fmbench-resume (finished cells are skipped, a cell
# cut by an interruption runs again), logged to OUT/session-N.log with the command, commit and times.
# Seed by seed, so that an interrupted run leaves whole seeds: every tuner's row of a seed is a paired
# comparison, and a seed with a missing tuner is not.
# The run must have the CPU to itself (its seconds are reported): `touch OUT/PAUSE` makes it wait before its
# next seed (the one in flight finishes), `rm OUT/PAUSE` lets it go on.
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OUT FIRST LAST [BACKEND]" >&2; exit 2; }
out=$1 first=$2 last=$3 backend=${4:-jax}
py=${PY:-.venv/bin/python}
mkdir -p "$out"
for seed in $(seq "$first" "$last"); do
    while [ -e "$out/PAUSE" ]; do sleep 20; done
    n=1
    while [ -e "$out/session-$n.log" ]; do n=$((n + 1)); done
    args=(benchmarks/test_matrix.py --benchmark-only --fmbench-profile standard
        --fmbench-tuners random,hyperband,bayesian,tpe --fmbench-seeds "$seed" -k 'baseline or epochs100'
        --fmbench-backend "$backend" --fmbench-out "$out" --fmbench-resume -p no:cacheprovider -s)
    {
        echo "\$ pytest ${args[*]}   # at $(git rev-parse --short=12 HEAD), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        start=$(date +%s)
        PYTHONUNBUFFERED=1 "$py" -m pytest "${args[@]}"
        status=$?
        echo "exit $status after $(($(date +%s) - start)) s, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } 2>&1 | tee "$out/session-$n.log"
    # A failed cell (exit 1) keeps its error row and runs again on the next resume; an interrupted or refused
    # session (exit 2 and up) stops the run.
    grep -qE "^exit [01] " "$out/session-$n.log" || exit 1
done
