"""fmbench history: runs kept per machine and commit, the trend across them, and the commit a cell stepped down at,
on a real smoke run (tests/golden_regress/smoke) copied to stand for several commits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fmbench import cli, history, results, resultset
from fmbench.schema import INTEGER_COLUMNS

GOLDEN = Path(__file__).parent / "golden_regress" / "smoke"
STORE = Path(__file__).parents[1] / "results" / "history" / "smoke-gate"  # the committed store


def commit_run(tmp_path: Path, commit: str, hour: int, drop: float = 0.0, cpu: str | None = None) -> Path:
    """The golden smoke run as if made at `commit`, `hour` hours later, every test accuracy lowered by drop."""
    folder = tmp_path / f"run-{commit}-{cpu or 'same'}"
    shutil.copytree(GOLDEN, folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    trials = pd.read_csv(folder / "trials.csv", dtype=str, keep_default_na=False)
    suffix = f"-{commit}-{cpu or 'same'}"
    runs["commit"] = commit
    runs["started_at"] = pd.to_datetime(runs["started_at"]).add(pd.Timedelta(hours=hour)).map(lambda t: t.isoformat())
    if cpu:
        runs["cpu_model"] = cpu
    runs["test_accuracy"] = (runs["test_accuracy"].astype(float) - drop).round(6).astype(str)
    runs["run_id"] += suffix
    trials["run_id"] += suffix
    runs.to_csv(folder / "runs.csv", index=False)
    trials.to_csv(folder / "trials.csv", index=False)
    return folder


def record(store: Path, *folders: Path) -> None:
    for folder in folders:
        assert cli.main(["history", str(store), "--add", str(folder)]) == 0


def test_a_planted_step_is_named_at_its_commit(tmp_path, capsys) -> None:
    store = tmp_path / "store"
    record(
        store,
        commit_run(tmp_path, "aaaa111", 0),
        commit_run(tmp_path, "bbbb222", 1),
        commit_run(tmp_path, "cccc333", 2, drop=0.03),  # every cell loses 3 points here and stays down
        commit_run(tmp_path, "dddd444", 3, drop=0.03),
    )
    line = history.commits(store)
    assert [c.commit for c in line] == ["aaaa111", "bbbb222", "cccc333", "dddd444"], "in the order they ran"
    found = history.steps(line)
    assert {(s.commit, s.before) for s in found} == {("cccc333", "bbbb222")}
    assert "all cells" in {s.cell for s in found}
    assert next(s for s in found if s.cell == "all cells").drop_points == pytest.approx(3.0, abs=0.01)
    text = (store / "history.md").read_text()
    assert "**cccc333** (against bbbb222): all cells: accuracy dropped 3.00 points" in text
    assert "aaaa111" in text and "dddd444" in text
    assert list(store.glob("history-*.png")), "the trend is drawn"


def test_unchanged_commits_have_no_step(tmp_path) -> None:
    store = tmp_path / "store"
    record(store, *(commit_run(tmp_path, c, i) for i, c in enumerate(["aaaa111", "bbbb222", "cccc333"])))
    assert history.steps(history.commits(store)) == []
    assert "Steps down: none" in (store / "history.md").read_text()


def test_each_machine_is_its_own_line(tmp_path) -> None:
    """A slower or other CPU is no step: its first commit is compared with nothing."""
    store = tmp_path / "store"
    record(store, commit_run(tmp_path, "aaaa111", 0), commit_run(tmp_path, "bbbb222", 1, drop=0.05, cpu="Other CPU"))
    line = history.commits(store)
    assert len({c.machine for c in line}) == 2
    assert history.steps([c for c in line if c.machine.startswith("Other")]) == []
    assert len(list(store.glob("history-*.png"))) == 2


def test_a_commit_is_added_once_and_the_store_is_kept(tmp_path, capsys) -> None:
    store = tmp_path / "store"
    first = commit_run(tmp_path, "aaaa111", 0)
    record(store, first)
    before = (store / "runs.csv").read_bytes()
    assert cli.main(["history", str(store), "--add", str(first)]) == 2
    assert "already holds commit aaaa111" in capsys.readouterr().err
    assert (store / "runs.csv").read_bytes() == before


def test_a_run_of_two_commits_is_refused(tmp_path, capsys) -> None:
    mixed = commit_run(tmp_path, "aaaa111", 0)
    runs = pd.read_csv(mixed / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[0, "commit"] = "bbbb222"
    runs.to_csv(mixed / "runs.csv", index=False)
    assert cli.main(["history", str(tmp_path / "store"), "--add", str(mixed)]) == 2
    err = capsys.readouterr().err
    assert "2 commit(s) (aaaa111, bbbb222)" in err and not (tmp_path / "store" / "runs.csv").exists()


def test_an_empty_store_says_how_to_start_one(tmp_path, capsys) -> None:
    assert cli.main(["history", str(tmp_path / "none")]) == 2
    assert "no history there yet; add a run with `fmbench history" in capsys.readouterr().err


def raw(folder: Path, name: str) -> pd.DataFrame:
    """A table as its text: what a reader of the committed CSV sees."""
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def test_the_store_keeps_what_it_read_in_the_schemas_types(tmp_path) -> None:
    """`history --add` writes back what the validating loader read: same values and dtypes, and integers as the
    source wrote them ('1', never '1.0', with gaps kept empty: the golden run has time budgets without max_trials,
    tuners without hyperband_factor, trials without a bracket)."""
    source, store = commit_run(tmp_path, "aaaa111", 0), tmp_path / "store"
    record(store, source)
    read, stored = resultset.load(source), resultset.load(store)
    pd.testing.assert_frame_equal(stored.runs, read.runs)
    pd.testing.assert_frame_equal(stored.trials, read.trials)
    assert str(stored.runs["max_trials"].dtype) == "Int64" and stored.runs["max_trials"].isna().any()
    for name in (results.RUNS_FILE, results.TRIALS_FILE):
        before, after = raw(source, name), raw(store, name)
        integers = [c for c in before.columns if c in INTEGER_COLUMNS]
        assert "seed" in integers and "epochs" in integers
        pd.testing.assert_frame_equal(after[integers], before[integers])


def test_the_committed_store_holds_integers_as_integers() -> None:
    """results/history/smoke-gate was once written with seed 1.0 and train_size 1500.0; it still reads as the
    history it records (four commits, the doctored learning rate's step)."""
    for name in (results.RUNS_FILE, results.TRIALS_FILE):
        table = raw(STORE, name)
        floats = [c for c in table.columns if c in INTEGER_COLUMNS and table[c].str.contains(".", regex=False).any()]
        assert not floats, f"{STORE / name}: integer columns written as floats: {floats}"
    line = history.commits(STORE)
    assert [c.label for c in line] == ["43bfcc0", "2935c3e-dirty", "98017ae", "6f52ac2"]
    assert {s.commit for s in history.steps(line)} == {"2935c3eb34cf-dirty"}


def test_steps_are_judged_with_the_noise_a_reference_measured(tmp_path, capsys) -> None:
    """A 3-point drop of every cell, spread-free in the doctored copy, is a step with one image as the only floor;
    with the run-to-run noise a repeated reference measured (2 points per test), one run against one run on two
    seeds is no evidence of it, as the gate would judge it."""
    store = tmp_path / "store"
    record(store, commit_run(tmp_path, "aaaa111", 0), commit_run(tmp_path, "bbbb222", 1, drop=0.03))
    assert {s.cell for s in history.steps(history.commits(store))} >= {"all cells"}
    names = ["baseline", "random, all budgets", "hyperband, all budgets", "bayesian, all budgets", "all cells"]
    assert history.steps(history.commits(store), dict.fromkeys(names, 0.02)) == []
    single = tmp_path / "single.json"
    assert cli.main(["check", str(GOLDEN), "--reference", str(single), "--update-reference"]) == 0
    assert cli.main(["history", str(store), "--noise-from", str(single)]) == 2
    assert "measured no noise" in capsys.readouterr().err
