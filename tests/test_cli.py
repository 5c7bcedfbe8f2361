"""fmbench.cli: bad input exits 2 with one line on stderr naming the problem, before any training starts.

Nothing here trains. The subprocess tests block TensorFlow's import to prove validation happens before it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fmbench import cli, data
from fmbench.spec import Budget

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)


@pytest.fixture
def corrupt_dir(tmp_path: Path, subset_dir: Path) -> Path:
    """A copy of the subset whose training labels file is cut in half (a broken download)."""
    out = tmp_path / "corrupt"
    out.mkdir()
    for name in data.FILES:
        shutil.copyfile(subset_dir / name, out / name)
    labels = out / data.TRAIN_LABELS
    labels.write_bytes(labels.read_bytes()[: labels.stat().st_size // 2])
    return out


def _run_args(subset_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--profile",
        "smoke",
        "--data-dir",
        str(subset_dir),
        "--out",
        str(out),
        *extra,
    ]


def _override(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


# (what to change, expected words in the one stderr line)
BAD_RUNS = {
    "unknown tuner": (("--tuner", "sobol"), ["'sobol'", "random", "hyperband", "bayesian", "baseline"]),
    "seed 0": (("--seed", "0"), ["seed", ">= 1"]),
    "negative seed": (("--seed", "-3"), ["seed", ">= 1"]),
    "zero trials": (("--max-trials", "0"), ["max_trials", ">= 1"]),
    "negative seconds": (("--max-seconds", "-1"), ["max_seconds", "> 0"]),
    "unknown profile": (("--profile", "huge"), ["'huge'", "smoke", "quick", "standard", "full"]),
}


def _assert_one_error_line(capsys: pytest.CaptureFixture, words: list[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{captured.err}"
    line = lines[0]
    assert line.startswith("fmbench run: error: "), line
    for word in words:
        assert word in line, f"{word!r} missing from: {line}"
    return line


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_arguments_exit_2_with_one_line(
    case: str, subset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (flag, value), words = BAD_RUNS[case]
    args = _run_args(subset_dir, tmp_path / "out")
    args = _override(args, flag, value) if flag in args else args + [flag, value]
    assert cli.main(args) == 2
    _assert_one_error_line(capsys, words)
    assert not (tmp_path / "out").exists(), "nothing may be written for a rejected run"


def test_tuner_without_budget_takes_the_profiles_first_budget(subset_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from fmbench import protocol, run_rows

    seen = []
    monkeypatch.setattr(protocol, "run", lambda spec, split, progress: seen.append(spec) or _stub_result(spec))
    monkeypatch.setattr(run_rows, "save_run", lambda out, result: None)
    args = ["run", "--tuner", "hyperband", "--profile", "smoke", "--data-dir", str(subset_dir), "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert [spec.budget for spec in seen] == [Budget(max_trials=4)]  # smoke's first budget: Hyperband's first bracket


def test_profile_without_a_budget_still_asks_for_one(subset_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from fmbench import profiles

    smoke = profiles.PROFILES["smoke"]
    monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(smoke, budgets=()))
    args = ["run", "--tuner", "hyperband", "--profile", "smoke", "--data-dir", str(subset_dir), "--out", str(tmp_path)]
    assert cli.main(args) == 2
    _assert_one_error_line(capsys, ["hyperband", "--max-trials", "--max-seconds"])


def _stub_result(spec):
    from fmbench.spec import RunResult

    return RunResult(
        spec=spec,
        run_id="r",
        started_at="t",
        best_hyperparameters={},
        best_val_accuracy=None,
        test_accuracy=0.5,
        test_loss=1.0,
        search_seconds=0.0,
        retrain_seconds=0.0,
        evaluate_seconds=0.0,
        trials_completed=0,
        trials_failed=0,
        search_epochs=0,
        retrain_epochs=0,
        stopped_by="trials",
        time_overrun_seconds=None,
    )


def test_missing_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-such-dir"
    assert cli.main(_run_args(missing, tmp_path / "out")) == 2
    _assert_one_error_line(capsys, [str(missing), "does not exist", "--data-dir"])
    assert not (tmp_path / "out").exists()


def test_corrupt_data_exits_2_naming_the_file(corrupt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(_run_args(corrupt_dir, tmp_path / "out")) == 2
    _assert_one_error_line(capsys, [str(corrupt_dir / data.TRAIN_LABELS)])
    assert not (tmp_path / "out").exists()


def test_data_command_reports_the_subset(subset_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["data", "--data-dir", str(subset_dir)]) == 0
    out = capsys.readouterr().out
    assert "1500 train, 300 validation, 400 test images" in out


def test_data_command_corrupt_exits_2(corrupt_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["data", "--data-dir", str(corrupt_dir)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmbench data: error: ") and data.TRAIN_LABELS in lines[0]


# --- validation before TensorFlow ----------------------------------------------------------------------------------

_BLOCK_TF = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "keras_tuner"):
                raise ImportError(f"TEST: {name} imported before the input was validated")

    sys.meta_path.insert(0, BlockTensorFlow())
    from fmbench import cli
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def _cli_without_tf(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TF, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def test_spec_errors_are_reported_before_importing_tensorflow(subset_dir: Path, tmp_path: Path) -> None:
    proc = _cli_without_tf(_run_args(subset_dir, tmp_path) + ["--seed", "0"])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "seed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("which", ["missing", "corrupt"])
def test_data_errors_are_reported_before_importing_tensorflow(which: str, corrupt_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "no-such-dir" if which == "missing" else corrupt_dir
    proc = _cli_without_tf(_run_args(directory, tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(directory) in proc.stderr, proc.stderr


def test_run_writes_to_an_ignored_folder_by_default() -> None:
    out = Path(cli._parser().parse_args(["run", "--tuner", "baseline"]).out)
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert out.parts[:2] == ("results", "local") and "results/local/" in ignored


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fmbench {importlib.metadata.version('fmbench')}"
