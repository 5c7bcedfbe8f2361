"""A run's rows (fmbench.run_rows), their atomic and locked appends and validated reading (fmbench.results), and
the machine info every run row records (fmbench.machine).

No test imports TensorFlow: machine info is tested through its hooks and a fake /proc/cpuinfo text, over a stand-in
for the library versions (reading them imports every library, seconds per process).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from fmbench import machine, results, run_rows
from fmbench.results import ResultsError
from fmbench.schema import MACHINE_COLUMNS, RUN_COLUMNS, TRIAL_COLUMNS
from fmbench.spec import Budget, DataSizes, RunResult, RunSpec, TelemetrySummary, TrialRecord

MACHINE = {
    "hostname": "host-a",
    "platform": "Linux-x",
    "cpu_model": "Test CPU",
    "cpu_cores": 2,
    "gpu_model": "no GPU",
    "python_version": "3.11.0",
    "tensorflow_version": "2.21.0",
    "jax_version": "not installed",
    "keras_version": "3.0.0",
    "keras_tuner_version": "1.4.8",
    "optuna_version": "5.0.0",
    "sklearn_version": "1.9.1",
    "commit": "abcdef123456",
    "keras_backend": "tensorflow",
}
TELEMETRY = TelemetrySummary(
    samples=7,
    cpu_util_mean=150.0,
    system_cpu_util_mean=80.0,
    rss_peak_mb=900.0,
    gpu_util_mean=55.0,
    gpu_util_p95=90.0,
    gpu_util_max=99.0,
    gpu_mem_peak_mb=1234.0,
)


def _result(
    run_id: str = "hyperband-trials2-epochs20-time30s-seed3-0123abcd", error: str = "partial failure"
) -> RunResult:
    spec = RunSpec(
        tuner="hyperband",
        seed=3,
        budget=Budget(max_trials=2, max_seconds=30, max_epochs=20),
        sizes=DataSizes(train=300, val=100, test=100),
        epochs=4,
        batch_size=64,
        profile="smoke",
    )
    trials = (
        TrialRecord(
            trial_id="0000",
            hyperparameters={"num_layers": 1, "units_0": 64, "dropout_0": 0.1, "learning_rate": 1e-3},
            status="COMPLETED",
            val_accuracy=0.81,
            epochs=2,
            started_seconds=0.51234,
            seconds=3.25678,
            telemetry=TELEMETRY,
            bracket=1,
            round=1,
            initial_epoch=1,
            parent_trial_id="0003",
        ),
        TrialRecord(
            trial_id="0001",
            hyperparameters={"num_layers": 2},
            status="FAILED",
            val_accuracy=None,
            epochs=0,
            started_seconds=3.9,
            seconds=0.2,
            error="ValueError: boom",
        ),
    )
    return RunResult(
        spec=spec,
        run_id=run_id,
        started_at="2026-01-02T03:04:05+00:00",
        best_hyperparameters={"units_0": 64, "num_layers": 1, "dropout_0": 0.1, "learning_rate": 1e-3},
        best_val_accuracy=0.81,
        test_accuracy=0.8,
        test_loss=0.55,
        search_seconds=4.1234,
        retrain_seconds=2.5,
        evaluate_seconds=0.25,
        trials_completed=1,
        trials_failed=1,
        search_epochs=2,
        retrain_epochs=4,
        stopped_by="trials",
        time_overrun_seconds=0.0,
        num_initial_points=5,
        error=error,
        trials=trials,
        telemetry=TELEMETRY,
        trials_cut=1,
        brackets_completed=1,
        model_trials=1,
    )


# --- flat rows -----------------------------------------------------------------------------------------------------


def test_run_row_has_every_column_in_order_and_all_filled() -> None:
    row = run_rows.run_row(_result(), MACHINE)
    assert list(row) == RUN_COLUMNS
    empty = [column for column, value in row.items() if value is None]
    assert not empty, f"columns not flattened from a fully-populated result: {empty}"


def test_run_row_values() -> None:
    result = _result()
    row = run_rows.run_row(result, MACHINE)
    expected = {
        "run_id": result.run_id,
        "started_at": result.started_at,
        "profile": "smoke",
        "cell": "hyperband-trials2-epochs20-time30s-seed3",
        "tuner": "hyperband",
        "budget": "trials2-epochs20-time30s",
        "max_trials": 2,
        "max_seconds": 30,
        "max_epochs": 20,
        "seed": 3,
        "train_size": 300,
        "val_size": 100,
        "test_size": 100,
        "epochs": 4,
        "batch_size": 64,
        "hyperband_factor": 3,
        "num_initial_points": 5,
        "best_val_accuracy": 0.81,
        "test_accuracy": 0.8,
        "test_loss": 0.55,
        "search_seconds": 4.123,
        "retrain_seconds": 2.5,
        "evaluate_seconds": 0.25,
        "wall_seconds": 6.873,
        "trials_completed": 1,
        "trials_failed": 1,
        "search_epochs": 2,
        "retrain_epochs": 4,
        "stopped_by": "trials",
        "time_overrun_seconds": 0.0,
        "error": "partial failure",
        "trials_cut": 1,
        "samples": 7,
        "cpu_util_mean": 150.0,
        "gpu_util_p95": 90.0,
        "gpu_mem_peak_mb": 1234.0,
        **MACHINE,
    }
    assert {column: row[column] for column in expected} == expected
    assert json.loads(row["best_hyperparameters"]) == result.best_hyperparameters
    assert list(json.loads(row["best_hyperparameters"])) == sorted(result.best_hyperparameters), "stable JSON"


def test_hyperband_factor_only_on_hyperband_rows() -> None:
    result = _result()
    random_result = RunResult(
        **{**result.__dict__, "spec": RunSpec(tuner="random", seed=3, budget=Budget(max_trials=2))}
    )
    assert run_rows.run_row(random_result, MACHINE)["hyperband_factor"] is None


def test_trial_rows_one_per_trial_with_every_column() -> None:
    result = _result()
    rows = run_rows.trial_rows(result)
    assert len(rows) == 2
    for row in rows:
        assert list(row) == TRIAL_COLUMNS
    first, second = rows
    identity = {
        "run_id": result.run_id,
        "profile": "smoke",
        "cell": result.spec.cell,
        "tuner": "hyperband",
        "budget": "trials2-epochs20-time30s",
        "seed": 3,
    }
    assert {k: first[k] for k in identity} == identity and {k: second[k] for k in identity} == identity
    assert first["trial_id"] == "0000" and first["status"] == "COMPLETED" and first["val_accuracy"] == 0.81
    assert first["epochs"] == 2 and first["started_seconds"] == 0.512 and first["seconds"] == 3.257
    assert json.loads(first["hyperparameters"]) == result.trials[0].hyperparameters
    assert first["samples"] == 7 and first["gpu_util_max"] == 99.0
    assert first["error"] == ""
    assert (first["bracket"], first["round"], first["initial_epoch"], first["parent_trial_id"]) == (1, 1, 1, "0003")
    empty = [column for column, value in first.items() if value is None]
    assert not empty, f"columns not flattened from a fully-populated trial: {empty}"
    assert second["status"] == "FAILED" and second["val_accuracy"] is None and second["error"] == "ValueError: boom"


def test_save_run_round_trips_through_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_rows, "machine_info", lambda: dict(MACHINE))
    run_rows.save_run(tmp_path, _result(run_id="run-a"))
    run_rows.save_run(tmp_path, _result(run_id="run-b"))
    runs, trials = results.read_runs(tmp_path), results.read_trials(tmp_path)
    assert list(runs["run_id"]) == ["run-a", "run-b"]
    assert list(trials["run_id"]) == ["run-a", "run-a", "run-b", "run-b"]
    assert runs["test_accuracy"].tolist() == [0.8, 0.8]
    assert runs["cpu_model"].tolist() == ["Test CPU", "Test CPU"]
    assert json.loads(runs["best_hyperparameters"][0])["units_0"] == 64
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_save_run_without_trials_writes_the_run_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A baseline (or a run that failed before its first trial) has no trials but still gets its run row.
    monkeypatch.setattr(run_rows, "machine_info", lambda: dict(MACHINE))
    result = RunResult(**{**_result().__dict__, "trials": ()})
    run_rows.save_run(tmp_path, result)
    assert len(results.read_runs(tmp_path)) == 1
    assert not (tmp_path / results.TRIALS_FILE).exists()


def test_integer_columns_are_written_as_integers_with_gaps_kept(tmp_path: Path) -> None:
    # pandas holds [1, None] as floats: without the schema's types the file would say seed 1.0, max_trials 4.0.
    path = tmp_path / "runs.csv"
    rows = [{"run_id": "a", "seed": 1.0, "max_trials": None}, {"run_id": "b", "seed": 2.0, "max_trials": 4.0}]
    results.append_rows(path, rows, ["run_id", "seed", "max_trials"])
    assert path.read_text() == "run_id,seed,max_trials\na,1,\nb,2,4\n"


def test_a_fraction_for_an_integer_column_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    with pytest.raises(ResultsError) as excinfo:
        results.append_rows(path, [{"run_id": "a", "seed": 1.5}], ["run_id", "seed"])
    _assert_one_line_naming(excinfo, path)
    assert "column seed would get 1.5, not a whole number" in str(excinfo.value)
    assert not path.exists()


def test_append_leaves_existing_rows_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "trials.csv"
    columns = ["run_id", "trial_id", "commit", "error"]
    results.append_rows(path, [{"run_id": "a", "trial_id": "0000", "commit": "1234e5678901", "error": ""}], columns)
    before = path.read_text()
    results.append_rows(path, [{"run_id": "b", "trial_id": "0001", "commit": "abcdef012345", "error": "x"}], columns)
    after = path.read_text()
    assert after.startswith(before), f"first row changed:\n{before}---\n{after}"
    assert results.read_table(path, columns)["commit"].tolist() == ["1234e5678901", "abcdef012345"]


# --- atomic appends ------------------------------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "runs.csv"
    results.append_rows(path, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], ["a", "b"])
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in ("runs.csv", results.LOCK_FILE))


def test_append_adds_rows_after_existing_ones(table: Path) -> None:
    results.append_rows(table, [{"a": 3, "b": "z"}], ["a", "b"])
    frame = pd.read_csv(table)
    assert frame["a"].tolist() == [1, 2, 3] and frame["b"].tolist() == ["x", "y", "z"]


def test_append_of_no_rows_leaves_the_file_alone(table: Path) -> None:
    before = table.read_bytes()
    results.append_rows(table, [], ["a", "b"])
    assert table.read_bytes() == before


def test_append_failing_mid_write_keeps_the_old_file_and_no_temp(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = table.read_bytes()

    def dying_fsync(fd):
        os.write(fd, b"a,b\n1,x\n2,")  # a partial table reaches the disk, then the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(OSError, match="disk full"):
        results.append_rows(table, [{"a": 3, "b": "z"}], ["a", "b"])
    assert table.read_bytes() == before
    assert _leftovers(table.parent) == []


def test_append_failing_at_rename_keeps_the_old_file_and_no_temp(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = table.read_bytes()

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        results.append_rows(table, [{"a": 3, "b": "z"}], ["a", "b"])
    assert table.read_bytes() == before
    assert _leftovers(table.parent) == []


def test_append_interrupted_by_ctrl_c_leaves_no_temp(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = table.read_bytes()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.append_rows(table, [{"a": 3, "b": "z"}], ["a", "b"])
    assert table.read_bytes() == before
    assert _leftovers(table.parent) == []


def test_first_write_failing_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("rename failed")))
    path = tmp_path / "new" / "runs.csv"
    with pytest.raises(OSError):
        results.append_rows(path, [{"a": 1}], ["a"])
    assert _leftovers(path.parent) == []


# --- concurrent writers --------------------------------------------------------------------------------------------

WRITERS, APPENDS = 4, 25
_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fmbench import results

    table, writer, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():  # all writers start together, for the most contention
        time.sleep(0.005)
    for i in range(int(sys.argv[4])):
        rows = [{"writer": writer, "seq": 2 * i + k, "text": f'w{writer} r{2 * i + k}, "quoted"'} for k in (0, 1)]
        results.append_rows(table, rows, ["writer", "seq", "text"])
    """
)


def _expected_append(writer: int, i: int) -> str:
    """The two CSV lines one append writes, spelled out by hand: commas and quotes force CSV quoting."""
    return "".join(f'{writer},{seq},"w{writer} r{seq}, ""quoted"""\n' for seq in (2 * i, 2 * i + 1))


def test_concurrent_writers_keep_every_row_once_and_byte_identical(tmp_path: Path) -> None:
    table, go = tmp_path / "out" / "runs.csv", tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(results.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(table), str(w), str(go), str(APPENDS)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    time.sleep(0.5)  # let the interpreters start and import, so the appends overlap
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    text = table.read_text()
    header, body = text.split("\n", 1)
    assert header == "writer,seq,text"
    appends = [_expected_append(w, i) for w in range(WRITERS) for i in range(APPENDS)]
    for append in appends:
        assert body.count(append) == 1, f"lost or doubled: {append!r}"
    assert len(body) == sum(map(len, appends)), "nothing but the appended rows"
    for w in range(WRITERS):  # each writer's appends land in the order it made them
        positions = [body.index(_expected_append(w, i)) for i in range(APPENDS)]
        assert positions == sorted(positions)
    assert len(results.read_table(table, ["writer", "seq", "text"])) == 2 * WRITERS * APPENDS


# --- reading -------------------------------------------------------------------------------------------------------


def _assert_one_line_naming(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, repr(message)
    assert str(path) in message, message
    return message


def test_read_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    with pytest.raises(ResultsError) as excinfo:
        results.read_table(path, RUN_COLUMNS)
    assert "no such results file" in _assert_one_line_naming(excinfo, path)


def test_read_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ResultsError) as excinfo:
        results.read_runs(tmp_path / "nowhere")
    _assert_one_line_naming(excinfo, tmp_path / "nowhere" / "runs.csv")


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_read_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "runs.csv"
    path.write_bytes(content)
    with pytest.raises(ResultsError) as excinfo:
        results.read_table(path, RUN_COLUMNS)
    assert "empty" in _assert_one_line_naming(excinfo, path)


@pytest.mark.parametrize(
    "content",
    [
        b'a,b\n1,2,3,4,5\n"unterminated\n',  # ragged rows
        b"\xff\xfe\x00\x01\x89PNG\r\n\x1a\n\x00\x00binary\xc3\x28",  # not text at all
    ],
    ids=["ragged", "binary"],
)
def test_read_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "runs.csv"
    path.write_bytes(content)
    with pytest.raises(ResultsError) as excinfo:
        results.read_table(path, RUN_COLUMNS)
    _assert_one_line_naming(excinfo, path)


def test_read_file_missing_columns_names_them(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    columns = [c for c in RUN_COLUMNS if c not in ("test_accuracy", "stopped_by")]
    pd.DataFrame([{c: 1 for c in columns}], columns=columns).to_csv(path, index=False)
    with pytest.raises(ResultsError) as excinfo:
        results.read_table(path, RUN_COLUMNS)
    message = _assert_one_line_naming(excinfo, path)
    assert "test_accuracy" in message and "stopped_by" in message


def test_tables_written_before_the_library_version_columns_still_read(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    columns = [c for c in RUN_COLUMNS if c not in ("optuna_version", "sklearn_version", "space")]
    pd.DataFrame([{c: 1 for c in columns}], columns=columns).to_csv(path, index=False)
    frame = results.read_table(path, RUN_COLUMNS)
    assert set(RUN_COLUMNS) <= set(frame.columns)
    assert frame[["optuna_version", "sklearn_version"]].isna().all().all()
    assert (frame["space"] == "mlp").all(), "every row before search spaces was the mlp space"


def test_read_garbage_trials_file(tmp_path: Path) -> None:
    (tmp_path / "trials.csv").write_text("hello world\n")
    with pytest.raises(ResultsError) as excinfo:
        results.read_trials(tmp_path)
    _assert_one_line_naming(excinfo, tmp_path / "trials.csv")


def test_append_to_a_damaged_table_refuses_and_keeps_it(tmp_path: Path) -> None:
    # Appending must not silently replace a damaged file (and the runs it may still hold) with the new row.
    path = tmp_path / "runs.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ResultsError):
        results.append_rows(path, [{"a": 1, "b": 2}], ["a", "b"])
    assert path.read_text() == "a\n1\n"


# --- machine info --------------------------------------------------------------------------------------------------


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""


@pytest.fixture
def gathered(monkeypatch: pytest.MonkeyPatch) -> dict:
    """What the module gathers, stood in by MACHINE (the real one imports TensorFlow), with no hooks registered."""
    monkeypatch.setattr(machine, "_gathered", lambda: dict(MACHINE))
    monkeypatch.setattr(machine, "MACHINE_HOOKS", [])
    return MACHINE


def test_a_registered_hook_lands_in_the_row(tmp_path: Path, gathered: dict) -> None:
    def rack(info: dict) -> None:  # a site names its machines its own way, without editing fmbench
        info["cpu_model"] = f"{info['cpu_model']} (rack 7)"
        info["gpu_model"] = "no GPU (MIG slice hidden)"

    run_rows.save_run(tmp_path, _result(run_id="before"))
    machine.MACHINE_HOOKS.append(rack)  # after a first row: the gathered info is cached, the hooks are not
    run_rows.save_run(tmp_path, _result(run_id="after"))
    runs = results.read_runs(tmp_path)
    assert runs["cpu_model"].tolist() == ["Test CPU", "Test CPU (rack 7)"]
    assert runs["gpu_model"].tolist() == ["no GPU", "no GPU (MIG slice hidden)"]
    assert runs["hostname"].tolist() == ["host-a", "host-a"], "fields no hook touches keep the gathered value"
    assert list(runs.columns) == RUN_COLUMNS


def test_hooks_run_in_order_and_an_injected_list_replaces_the_registered_one(gathered: dict) -> None:
    machine.MACHINE_HOOKS.append(lambda info: info.update(commit="registered"))
    injected = [lambda info: info.update(commit="first"), lambda info: info.update(commit=info["commit"] + "+second")]
    assert machine.machine_info()["commit"] == "registered"
    info = machine.machine_info(hooks=injected)
    assert info["commit"] == "first+second"
    assert list(info) == MACHINE_COLUMNS


def test_a_hook_setting_a_field_rows_have_no_column_for_is_refused(gathered: dict) -> None:
    def rack_number(info: dict) -> None:
        info["rack"] = 7

    with pytest.raises(ResultsError) as excinfo:
        machine.machine_info(hooks=[rack_number])
    message = str(excinfo.value)
    assert "'rack_number' set rack" in message and "add a Column to schema.MACHINE" in message
    assert "\n" not in message


def test_cpu_model_is_read_from_cpuinfo_text() -> None:
    assert machine.cpu_model(CPUINFO) == "AMD EPYC 7B13 64-Core Processor"


def test_cpu_model_without_a_model_name_is_never_empty() -> None:
    # An ARM kernel's /proc/cpuinfo has processor and BogoMIPS lines but no model name; a row keys machines on it.
    name = machine.cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert name and "BogoMIPS" not in name


def test_host_info_names_every_host_field(visible_gpus: list[str]) -> None:
    info = machine.host_info()
    assert set(info) | set(machine.LIBRARIES) | {"keras_backend", "commit"} == set(MACHINE_COLUMNS)
    assert all(value not in (None, "") for value in info.values()), info
    assert info["gpu_model"] == (", ".join(visible_gpus) or "no GPU")  # NVML read independently by the fixture


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_commit_of_this_checkout() -> None:
    package = Path(machine.__file__).resolve().parent
    try:
        top = _git(package, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("fmbench is not running from a git checkout here")
    if Path(top).resolve() != package.parent:
        pytest.skip("fmbench is installed inside another repository, not run from its own checkout")
    commit = machine._commit()
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", commit), commit
    assert commit.split("-")[0] == _git(package, "rev-parse", "--short=12", "HEAD")


@pytest.mark.parametrize("where", ["no checkout", "inside another repository"])
def test_commit_is_unknown_outside_its_own_checkout(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "elsewhere"
    package = root / "lib" / "site-packages" / "fmbench"
    package.mkdir(parents=True)
    if where == "inside another repository":
        if shutil.which("git") is None:
            pytest.skip("git not installed")
        _git(root, "init", "-q")
        (root / "README").write_text("another project\n")
        _git(root, "add", "README")
        _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    else:
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # /tmp itself may sit in a checkout
    monkeypatch.setattr(machine, "__file__", str(package / "machine.py"))
    assert machine._commit() == "unknown"


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_commit_is_dirty_for_changed_code_and_not_for_rewritten_results_or_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A benchmark session rewrites the committed tables it replaces: that must not mark its own rows dirty.
    package = tmp_path / "fmbench"
    (tmp_path / "results" / "quick").mkdir(parents=True)
    package.mkdir()
    (package / "code.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("figures\n")
    (tmp_path / "results" / "quick" / "runs.csv").write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(machine, "__file__", str(package / "machine.py"))
    sha = _git(tmp_path, "rev-parse", "--short=12", "HEAD")
    (tmp_path / "results" / "quick" / "runs.csv").unlink()  # moved aside by a fresh session
    (tmp_path / "README.md").write_text("new figures\n")  # documentation edited while the session runs
    assert machine._commit() == sha
    (package / "code.py").write_text("x = 2\n")
    assert machine._commit() == f"{sha}-dirty"


def test_a_corrupt_table_names_its_line_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("run_id,seed\na,1\nb,2,extra\n")
    before = path.read_bytes()
    with pytest.raises(ResultsError, match=r"line 3.*fix the line it names \(the file is left as it is\)"):
        results.read_table(path, ["run_id", "seed"])
    assert path.read_bytes() == before


def test_the_commit_is_read_once_per_process(monkeypatch):
    """A session's rows name the commit of the code it loaded, not one made while it ran."""
    machine.code_commit.cache_clear()
    monkeypatch.setattr(machine, "_commit", lambda: "aaaa11112222")
    assert machine.code_commit() == "aaaa11112222"
    monkeypatch.setattr(machine, "_commit", lambda: "bbbb33334444")
    assert machine.code_commit() == "aaaa11112222"
    machine.code_commit.cache_clear()
