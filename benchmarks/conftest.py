"""pytest options and session plumbing for the tuner x budget x seed matrix."""

from __future__ import annotations

import datetime
import os
import shutil
import sys
from pathlib import Path

import pytest

from fmbench import backend, machine, placement, profiles, results, resultset, suite  # none imports Keras
from fmbench.registry import BASELINE, BASELINES
from fmbench.spec import RunSpec, SpecError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def pytest_addoption(parser):
    group = parser.getgroup("fmbench", "fmbench tuner benchmark matrix")
    group.addoption(
        "--fmbench-profile",
        default=os.environ.get("FMBENCH_PROFILE", profiles.DEFAULT_PROFILE),
        help=f"profile to run: {', '.join(profiles.PROFILES)} (default $FMBENCH_PROFILE or {profiles.DEFAULT_PROFILE})",
    )
    group.addoption(
        "--fmbench-tuners", help="comma list of tuners to run (baseline always runs); default: the profile's"
    )
    group.addoption("--fmbench-seeds", help="comma list of seeds; default: the profile's")
    group.addoption(
        "--fmbench-resume",
        action="store_true",
        help="continue the results folder's runs.csv: skip the cells finished there, rerun the failed ones "
        "(default: start new tables, the old ones moved aside)",
    )
    group.addoption(
        "--fmbench-shard",
        metavar="K/N",
        help="run the K-th of N deterministic shares of the cells (round robin), e.g. 1/4 on one host or CI job",
    )
    group.addoption(
        "--fmbench-init-seed-offset",
        type=int,
        default=os.environ.get("FMBENCH_INIT_SEED_OFFSET", "0"),
        metavar="N",
        help="shift every run's weight and data-order seed by N, the search seeds kept (a harmless change, for "
        "the gate's noise runs; recorded in runs.csv; default $FMBENCH_INIT_SEED_OFFSET or 0)",
    )
    group.addoption(
        "--fmbench-backend",
        help=f"Keras backend: {', '.join(backend.BACKENDS)} (default $KERAS_BACKEND, else the profile's)",
    )
    group.addoption(
        "--fmbench-data-dir", help="Fashion-MNIST IDX folder (default $FMBENCH_DATA_DIR, else the Keras loader)"
    )
    group.addoption(
        "--fmbench-replay-table",
        metavar="DIR",
        help="a replay profile's table folder (`fmbench table build`), in place of the profile's own",
    )
    group.addoption(
        "--fmbench-out",
        help="results folder (default results/local/<profile>, ignored by git; name results/<profile> to "
        "update the committed results)",
    )


def pytest_configure(config):
    """Turn the options into the list of RunSpecs; bad options are a usage error before anything runs.
    A pytest-xdist worker first takes its share of the machine, before any test imports TensorFlow."""
    try:
        profile = profiles.get_profile(config.getoption("fmbench_profile"))
        # Before any cell imports Keras
        config.fmbench_backend = backend.select(config.getoption("fmbench_backend"), profile.backend)
        config.fmbench_trainer = profile.trainer
        specs = suite.selected_specs(
            config.getoption("fmbench_profile"),
            config.getoption("fmbench_tuners"),
            config.getoption("fmbench_seeds"),
            config.getoption("fmbench_init_seed_offset"),
            config.getoption("fmbench_replay_table"),
        )
        config.fmbench_specs = suite.shard(specs, config.getoption("fmbench_shard"))
        suite.check_replay_tables(config.fmbench_specs)
    except SpecError as exc:
        raise pytest.UsageError(f"fmbench: {exc}") from None
    machine.code_commit()  # the commit of the code this session loaded, before any later commit can change it
    profile = config.getoption("fmbench_profile")
    config.fmbench_out = Path(config.getoption("fmbench_out") or REPO / "results" / "local" / profile)
    config.fmbench_tables_moved = False
    if _xdist_worker(config):
        worker = config.workerinput
        config.fmbench_placement = placement.apply(int(worker["workerid"].removeprefix("gw")), worker["workercount"])
    elif config.getoption("numprocesses", None) and config.fmbench_specs:
        # A worker's pytest.exit reaches the user only as "worker crashed": the controller reads the data first, so a
        # missing or broken dataset is the one-line error it is without workers, and a Keras download into its cache
        # happens once, not in two workers at the same file.
        _load_split(config)


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


# A cell's parameters as pytest (and so pytest-benchmark's saved JSON) records them: plain values, not a RunSpec.
CELL_PARAMS = ("profile", "tuner", "budget", "seed")


def _cell_params(spec: RunSpec) -> tuple:
    return spec.profile, spec.tuner, spec.budget.label, spec.seed


def pytest_generate_tests(metafunc):
    specs = metafunc.config.fmbench_specs
    for fixture, baselines in (("baseline_spec", True), ("tuner_spec", False)):
        if fixture in metafunc.fixturenames:
            chosen = [s for s in specs if (s.tuner in BASELINES) == baselines]
            ids = [s.cell.removeprefix(f"{BASELINE}-") if baselines else s.cell for s in chosen]
            metafunc.parametrize(CELL_PARAMS, [_cell_params(s) for s in chosen], ids=ids)


def _spec_of(config, params: dict) -> RunSpec | None:
    """The RunSpec of a collected cell, from its recorded parameters (None for a test that is no cell)."""
    if not all(name in params for name in CELL_PARAMS):
        return None
    return {_cell_params(s): s for s in config.fmbench_specs}[tuple(params[name] for name in CELL_PARAMS)]


@pytest.fixture
def baseline_spec(request, profile, tuner, budget, seed) -> RunSpec:
    return _spec_of(request.config, request.node.callspec.params)


@pytest.fixture
def tuner_spec(request, profile, tuner, budget, seed) -> RunSpec:
    return _spec_of(request.config, request.node.callspec.params)


def pytest_collection_modifyitems(config, items):
    """With --fmbench-resume, the cells finished in runs.csv are skipped. Under pytest-xdist the benchmarks that
    measure the machine itself (scale-out, sampler cost) are skipped: parallel cells would be in their figures."""
    if _xdist_worker(config):
        skip = pytest.mark.skip(reason="measures the machine itself: run it without -n")
        for item in items:
            if item.path.parent == HERE and item.path.name != "test_matrix.py":
                item.add_marker(skip)
    runs_file = config.fmbench_out / results.RUNS_FILE
    if not config.getoption("fmbench_resume") or not runs_file.exists():
        return
    try:
        done = suite.finished_cells(config.fmbench_out, config.fmbench_backend, config.fmbench_trainer)
    except results.ResultsError as exc:
        raise pytest.UsageError(f"--fmbench-resume: {exc}") from None
    for item in items:
        spec = _spec_of(config, item.callspec.params) if hasattr(item, "callspec") else None
        if spec and spec.cell in done:
            item.add_marker(pytest.mark.skip(reason=f"{spec.cell} finished in {runs_file} (--fmbench-resume)"))


@pytest.fixture(scope="session")
def fmbench_out(pytestconfig) -> Path:
    """The results folder. A fresh session (no --fmbench-resume) first moves earlier tables aside, losing nothing;
    under pytest-xdist the controller has done that once, before it handed out the first cell."""
    if not _xdist_worker(pytestconfig):
        _move_earlier_tables_aside(pytestconfig)
    return pytestconfig.fmbench_out


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """pytest-xdist's controller: workers run no cell before every worker has reported its collection."""
    config = node.config
    if any("test_matrix.py::" in nodeid for nodeid in ids) and not config.getoption("benchmark_skip", False):
        _move_earlier_tables_aside(config)


def _move_earlier_tables_aside(config) -> None:
    """Once per session, before the first cell writes."""
    if config.fmbench_tables_moved or config.getoption("fmbench_resume"):
        return
    config.fmbench_tables_moved = True
    out = config.fmbench_out
    old = [out / name for name in (results.RUNS_FILE, results.TRIALS_FILE) if (out / name).exists()]
    if old:
        archive = out / "previous" / datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        archive.mkdir(parents=True, exist_ok=True)
        for path in old:
            shutil.move(str(path), archive / path.name)
        config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"fmbench: earlier tables of {out} moved to {archive} (--fmbench-resume continues them instead)"
        )


@pytest.fixture(scope="session")
def fmbench_split(pytestconfig):
    """The profile's data, loaded once per session."""
    return _load_split(pytestconfig)


def _load_split(config):
    from fmbench import data

    profile = profiles.get_profile(config.getoption("fmbench_profile"))
    try:
        return data.load(data.resolve_data_dir(config.getoption("fmbench_data_dir")), profile.sizes)
    except data.DataError as exc:
        pytest.exit(f"fmbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def fmbench_session_clock(request):
    """Counts the matrix cells this session runs, for the progress lines' estimate of the time left. Under
    pytest-xdist a worker cannot know its share in advance, so it gets None and prints no estimate."""
    if _xdist_worker(request.config):
        return None
    cells = [item for item in request.session.items if "test_matrix.py::" in item.nodeid]
    return suite.SessionClock(sum(not item.get_closest_marker("skip") for item in cells))


@pytest.fixture(scope="session")
def fmbench_progress(pytestconfig):
    """Trial-by-trial progress straight to the terminal, past pytest's capture: a profile takes minutes.
    A pytest-xdist worker has no terminal reporter; its stderr still reaches the terminal."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    worker = pytestconfig.workerinput["workerid"] if _xdist_worker(pytestconfig) else None

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled():
            if worker:
                print(f"  [{worker}] {line}", file=sys.stderr, flush=True)
                return
            reporter.ensure_newline()
            reporter.write_line(f"  {line}")

    if worker:
        write(f"runs on {pytestconfig.fmbench_placement}")

    return write


def pytest_terminal_summary(terminalreporter, config):
    """The comparison table, and the markdown report rebuilt from the stored rows."""
    from fmbench.report import document, summary

    out = config.fmbench_out
    if config.option.collectonly or not (out / results.RUNS_FILE).exists() or config.getoption("benchmark_skip", False):
        return
    if _xdist_worker(config):
        return  # under pytest-xdist, the controller alone writes the summary and the report
    terminalreporter.write_sep(
        "=", f"fmbench {config.getoption('fmbench_profile')}: test accuracy against the baseline"
    )
    try:
        terminalreporter.write_line(summary.comparison_table(resultset.load(out)))
        terminalreporter.write_line(f"tables: {out / results.RUNS_FILE}, {out / results.TRIALS_FILE}")
        terminalreporter.write_line(f"report: {document.write_report(out)}")
    except results.ResultsError as exc:
        terminalreporter.write_line(f"fmbench: no report: {exc}", red=True)
