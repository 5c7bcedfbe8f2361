#!/usr/bin/env bash
# The gate profile's design runs (docs/gate.md, "The design for power"), in order, resumable: a run that finished
# is skipped and one an interruption cut is done again, so rerunning the script continues where it stopped. One
# CPU-heavy step at a time.
#   FMBENCH_DATA_DIR=DIR scripts/gate_design_runs.sh reference | fresh | planted | replay-reference | replay-fresh |
#       replay-planted
# reference: 4 runs of the gate's cells with the weight seed shifted by 1 to 4 (results/gate/reference-runs), then
#            results/reference/gate.json, their mean with the noise between them. Commit it before `fresh`: frozen.
# fresh:     20 harmless runs it never saw (results/gate/fresh): the weight seed shifted by 5 to 20, and four other
#            machines' numerics or speeds (oneDNN off, one TensorFlow thread, one core of two, both cores shared).
# planted:   every fault of scripts/planted/ through the gate (results/gate/planted, scripts/planted_run.sh).
# The replay tier (docs/gate.md, "A replay tier"; the replay-gate profile, on the committed results/replay-table):
# replay-reference: one run with the weight seeds unshifted (results/gate/replay-gate/reference), then
#            results/reference/replay-gate.json from it: unchanged code replays it to the last digit.
# replay-fresh: 20 harmless runs, the weight seeds shifted by 1 to 20 (every replayed curve's noise redrawn, and the
#            baseline fit each seed replays), into results/gate/replay-gate/fresh.
# replay-planted: the faults of the tuners' logic that the tier's tuners have (results/gate/planted-replay-gate).
set -uo pipefail
usage="usage: $0 reference|fresh|planted|replay-reference|replay-fresh|replay-planted"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
export GATE_PROFILE=gate
run() {  # run NAME "what was varied" [PREFIX...]: one noise run into $RUNS_DIR/NAME unless it finished there
    local out=$RUNS_DIR/$1
    # noise_run.sh logs "exit N after S s" last: a folder without it is a run an interruption cut, done again whole.
    if grep -q '^exit [0-9]* after' "$out/session.log" 2>/dev/null; then echo "skip $out (finished)"; return 0; fi
    [ ! -e "$out" ] || { echo "redo $out (cut before it finished)"; rm -rf "$out"; }
    scripts/noise_run.sh "$@"
}
case $1 in
reference)
    export RUNS_DIR=results/gate/reference-runs
    for k in 1 2 3 4; do FMBENCH_INIT_SEED_OFFSET=$k run "offset-$k" "weight seed shifted by $k (a reference repeat)"; done
    [ -e results/reference/gate.json ] ||
        .venv/bin/python -m fmbench calibrate reference "$RUNS_DIR"/offset-{1,2,3,4} --out results/reference/gate.json
    ;;
fresh)
    [ -e results/reference/gate.json ] || { echo "no results/reference/gate.json: run '$0 reference' first" >&2; exit 2; }
    export RUNS_DIR=results/gate/fresh
    for k in $(seq 5 20); do FMBENCH_INIT_SEED_OFFSET=$k run "offset-$k" "weight seed shifted by $k"; done
    TF_ENABLE_ONEDNN_OPTS=0 run onednn-off "oneDNN off (other CPU numerics), weight seed unshifted"
    FMBENCH_INIT_SEED_OFFSET=21 TF_NUM_INTRAOP_THREADS=1 run threads-1 "one TensorFlow thread, weight seed shifted by 21"
    FMBENCH_INIT_SEED_OFFSET=22 run one-core "one core of two (taskset -c 0), weight seed shifted by 22" taskset -c 0
    FMBENCH_INIT_SEED_OFFSET=23 COMPETING_LOAD=2 run shared "both cores shared with two busy processes, weight seed shifted by 23"
    ;;
planted)
    for patch in scripts/planted/*.patch; do
        name=$(basename "$patch" .patch)
        [ -e "results/gate/planted/$name" ] && { echo "skip $name (there)"; continue; }
        scripts/planted_run.sh "$name"
    done
    ;;
replay-reference)
    export GATE_PROFILE=replay-gate RUNS_DIR=results/gate/replay-gate
    run reference "the replay tier's reference: weight seeds unshifted"
    [ -e results/reference/replay-gate.json ] || .venv/bin/python -m fmbench check "$RUNS_DIR/reference" \
        --reference results/reference/replay-gate.json --update-reference
    ;;
replay-fresh)
    [ -e results/reference/replay-gate.json ] || { echo "no results/reference/replay-gate.json: run '$0 replay-reference' first" >&2; exit 2; }
    export GATE_PROFILE=replay-gate RUNS_DIR=results/gate/replay-gate/fresh
    for k in $(seq 1 20); do FMBENCH_INIT_SEED_OFFSET=$k run "offset-$k" "weight seed shifted by $k"; done
    ;;
replay-planted)
    for name in hyperband-never-promotes tpe-startup-whole-budget; do  # bayesian-random-only: no Bayesian cells
        [ -e "results/gate/planted-replay-gate/$name" ] && { echo "skip $name (there)"; continue; }
        GATE_PROFILE=replay-gate scripts/planted_run.sh "$name"
    done
    ;;
*) echo "$usage" >&2; exit 2 ;;
esac
