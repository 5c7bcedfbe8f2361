#!/usr/bin/env bash
# One planted regression through the gate (docs/gate.md): a realistic fault, scripts/planted/NAME.patch, applied to
# this commit's unchanged code in a scratch worktree; the gate's cells run there as `make gate` runs them (`make
# gate-cells`, with this checkout's .venv), then this checkout's check judges them against the reference (`make
# gate-check`). Into
# results/gate/planted/NAME: the tables, check.txt (the check's output), the patch and session.log. With
# GATE_PROFILE=replay-gate, the replay tier's cells and check (docs/gate.md, "A replay tier"), into
# results/gate/planted-replay-gate/NAME.
#   FMBENCH_DATA_DIR=DIR [GATE_PROFILE=replay-gate] scripts/planted_run.sh NAME
# A fault the gate passes is kept as it is: a planted drop of 2 points or more in a tuner that passes is a defect
# of the gate, recorded, not re-run until it fails.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 NAME (one of: $(cd scripts/planted && ls | sed 's/\.patch$//' | tr '\n' ' '))" >&2; exit 2; }
name=$1 repo=$(pwd) profile=${GATE_PROFILE:-gate}
patch=$repo/scripts/planted/$name.patch
out=$repo/results/gate/planted$([ "$profile" = gate ] || echo "-$profile")/$name
[ -f "$patch" ] || { echo "planted_run: no $patch; choose one of scripts/planted/*.patch" >&2; exit 2; }
[ ! -e "$out" ] || { echo "planted_run: $out exists; remove it to run $name again" >&2; exit 2; }
git diff --quiet HEAD -- fmbench || { echo "planted_run: fmbench/ has uncommitted changes; commit them first" >&2; exit 2; }
worktree=$(mktemp -d)/planted
git worktree add --quiet --detach "$worktree" HEAD || exit 2
trap 'git worktree remove --force "$worktree"' EXIT
git -C "$worktree" apply "$patch" || { echo "planted_run: $name.patch no longer applies to this commit" >&2; exit 2; }
mkdir -p "$out"
cp "$patch" "$out/"
{
    echo "\$ GATE_PROFILE=$profile $0 $name   # at $(git rev-parse --short=12 HEAD) with $name.patch, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # Run from the worktree, Python imports the patched fmbench (the working directory comes first on sys.path).
    (cd "$worktree" && "$repo/.venv/bin/python" -c 'import fmbench; print("fmbench from", fmbench.__file__)')
    start=$(date +%s)
    # -o: this checkout's .venv counts as installed; the worktree's newer pyproject.toml would reinstall it there.
    make -C "$worktree" -o "$repo/.venv/.installed" gate-cells VENV="$repo/.venv" GATE_OUT="$out" GATE_PROFILE="$profile"
    echo "gate-cells exit $? after $(($(date +%s) - start)) s"
} 2>&1 | tee "$out/session.log"
make --no-print-directory gate-check GATE_DIRS="$out" GATE_PROFILE="$profile" > "$out/check.txt" 2>&1
status=$?  # make's: 0 when the check passed, 2 when it failed (the check's own 1 or 2)
verdict=$(grep -o 'Verdict: .*' "$out/check.txt" | tail -1 | tr -d '*')
echo "check exit $status (make's: 2 when the check failed), ${verdict:-no verdict: see check.txt}, $(date -u +%Y-%m-%dT%H:%M:%SZ)" |
    tee -a "$out/session.log"
