#!/usr/bin/env bash
# One real run of the gate's cells (`make gate`) by unchanged code, varied in one harmless way, into
# RUNS_DIR/NAME (default results/noise/runs): its tables, report, check against the reference, session log, and
# varied.txt. GATE_PROFILE (default smoke) picks the gate's matrix, as for `make gate`.
#   [GATE_PROFILE=gate] [RUNS_DIR=DIR] scripts/noise_run.sh NAME "what was varied" [COMMAND PREFIX...]
# The variation is in the environment (FMBENCH_INIT_SEED_OFFSET, TF_ENABLE_ONEDNN_OPTS, ONEDNN_MAX_CPU_ISA,
# TF_NUM_INTRAOP_THREADS: each is logged) or in a prefix such as `taskset -c 0`. COMPETING_LOAD=K starts K busy
# processes on the CPUs the prefix leaves (a machine shared with other work) and stops them after the run.
# The run is kept whatever the gate says: a failing harmless run is a false alarm, and is counted as one.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 NAME \"what was varied\" [COMMAND PREFIX...]" >&2; exit 2; }
name=$1 varied=$2
shift 2
out=${RUNS_DIR:-results/noise/runs}/$name
[ ! -e "$out" ] || { echo "noise_run: $out exists; choose another NAME" >&2; exit 2; }
mkdir -p "$out"
echo "$varied" >"$out/varied.txt"
load=()
for _ in $(seq 1 "${COMPETING_LOAD:-0}"); do
    "$@" python3 -c 'while True: pass' &
    load+=($!)
done
trap '[ ${#load[@]} -eq 0 ] || kill "${load[@]}" 2>/dev/null' EXIT
{
    echo "\$ $0 $name \"$varied\" $*   # at $(git rev-parse --short=12 HEAD), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "environment: $(env | grep -E '^(GATE_PROFILE|FMBENCH_INIT_SEED_OFFSET|TF_ENABLE_ONEDNN_OPTS|ONEDNN_MAX_CPU_ISA|TF_NUM_INTRAOP_THREADS|TF_NUM_INTEROP_THREADS|COMPETING_LOAD)=' | tr '\n' ' ')"
    start=$(date +%s)
    "$@" make gate GATE_OUT="$out" GATE_HISTORY="$(mktemp -d)/history"
    echo "exit $? after $(($(date +%s) - start)) s"
} 2>&1 | tee "$out/session.log"
