"""scripts/check_headline.py: README's headline table against the report's figures from the committed rows (no
training; the real README and results are only read, every doctored file is a temporary copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import scripts_module

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
STANDARD = REPO / "results" / "standard-fresh"  # the headline's run


check_headline = scripts_module.load("check_headline")


def _readme_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = README.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the README no longer holds {old!r} once: update this test"
    copy = tmp_path / "README.md"
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


def test_the_committed_readme_matches_the_committed_results(capsys) -> None:
    assert check_headline.main([]) == 0, capsys.readouterr()
    assert check_headline.main([str(STANDARD), "--readme", str(README)]) == 0


def test_a_doctored_readme_copy_fails_with_a_unified_diff(tmp_path, capsys) -> None:
    copy = _readme_copy(tmp_path, "| hyperband | 0.8782 ± 0.0028 | +0.42 |", "| hyperband | 0.8782 ± 0.0028 | +0.43 |")
    assert check_headline.main([str(STANDARD), "--readme", str(copy)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {copy} (headline table)\n+++ recomputed from {STANDARD}\n"), out
    assert "\n-| hyperband | 0.8782 ± 0.0028 | +0.43 |" in out and "\n+| hyperband | 0.8782 ± 0.0028 | +0.42 |" in out
    assert "| random |" in out and "\n-| random" not in out, "only the doctored row differs"


def test_it_recomputes_from_the_rows_not_from_the_written_report(tmp_path, capsys) -> None:
    results = tmp_path / "standard"
    results.mkdir()
    shutil.copy(STANDARD / "trials.csv", results / "trials.csv")
    runs = pd.read_csv(STANDARD / "runs.csv", dtype=str, keep_default_na=False)  # every other cell as written
    runs.loc[(runs["tuner"] == "tpe") & (runs["seed"] == "101"), "test_accuracy"] = "0.8000"
    runs.to_csv(results / "runs.csv", index=False)
    assert check_headline.main([str(results)]) == 1
    changed = [line for line in capsys.readouterr().out.splitlines() if line[:1] in "-+" and "| tpe |" in line]
    assert len(changed) == 2, changed


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["a", "b"], "unrecognized arguments: b"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        check_headline.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_unreadable_input_exits_2_with_one_line(tmp_path, capsys) -> None:
    assert check_headline.main([str(tmp_path / "missing")]) == 2
    assert check_headline.main([str(STANDARD), "--readme", str(tmp_path / "missing.md")]) == 2
    renamed = _readme_copy(tmp_path, "| tuner | test accuracy |", "| tuner | test acc |")
    assert check_headline.main([str(STANDARD), "--readme", str(renamed)]) == 2
    # A folder of several budgets cannot fill a table without a budget column.
    assert check_headline.main([str(REPO / "results" / "quick")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.startswith("check_headline.py: error: ") for line in lines), lines
    assert "'test acc'" in lines[2] and "budget column" in lines[3]
