"""pytest options and session plumbing for the tuner x budget x seed matrix."""
from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from fmbench import profiles  # noqa: E402
from fmbench.spec import BASELINE, BASELINES, RUNNER_NAMES, RunSpec, SpecError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    group = parser.getgroup("fmbench", "fmbench tuner benchmark matrix")
    group.addoption("--fmbench-profile", default=os.environ.get("FMBENCH_PROFILE", profiles.DEFAULT_PROFILE),
                    help=f"profile to run: {', '.join(profiles.PROFILES)} (default $FMBENCH_PROFILE or {profiles.DEFAULT_PROFILE})")
    group.addoption("--fmbench-tuners", help="comma list of tuners to run (baseline always runs); default: the profile's")
    group.addoption("--fmbench-seeds", help="comma list of seeds; default: the profile's")
    group.addoption("--fmbench-resume", action="store_true",
                    help="continue results/<profile>/runs.csv, skipping cells already in it (default: start new tables, the old ones moved aside)")
    group.addoption("--fmbench-data-dir", help="Fashion-MNIST IDX folder (default $FMBENCH_DATA_DIR, else the Keras loader)")
    group.addoption("--fmbench-out", help="results folder (default results/<profile>)")


def pytest_configure(config):
    """Turn the options into the list of RunSpecs; bad options are a usage error before anything runs."""
    try:
        config.fmbench_specs = selected_specs(
            config.getoption("fmbench_profile"), config.getoption("fmbench_tuners"), config.getoption("fmbench_seeds")
        )
    except SpecError as exc:
        raise pytest.UsageError(f"fmbench: {exc}") from None
    profile = config.getoption("fmbench_profile")
    config.fmbench_out = Path(config.getoption("fmbench_out") or REPO / "results" / profile)


def selected_specs(profile_name: str, tuners: str | None, seeds: str | None) -> list[RunSpec]:
    profile = profiles.get_profile(profile_name)
    chosen_tuners = profile.tuners if tuners is None else tuple(_split_list(tuners))
    for tuner in chosen_tuners:
        if tuner not in RUNNER_NAMES or tuner == BASELINE:
            raise SpecError(f"unknown tuner {tuner!r} in --fmbench-tuners: choose from {', '.join(RUNNER_NAMES[:-1])}")
    chosen_seeds = profile.seeds
    if seeds is not None:
        try:
            chosen_seeds = tuple(int(seed) for seed in _split_list(seeds))
        except ValueError:
            raise SpecError(f"--fmbench-seeds must be a comma list of integers >= 1, got {seeds!r}") from None
    return profile.expand(chosen_tuners, chosen_seeds)  # RunSpec validates each seed


def _split_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise SpecError(f"empty list {text!r}: give comma-separated values")
    return items


def pytest_generate_tests(metafunc):
    specs = metafunc.config.fmbench_specs
    if "baseline_spec" in metafunc.fixturenames:
        chosen = [s for s in specs if s.tuner in BASELINES]
        metafunc.parametrize("baseline_spec", chosen, ids=[s.cell.removeprefix(f"{BASELINE}-") for s in chosen])
    if "tuner_spec" in metafunc.fixturenames:
        chosen = [s for s in specs if s.tuner not in BASELINES]
        metafunc.parametrize("tuner_spec", chosen, ids=[s.cell for s in chosen])


def pytest_collection_modifyitems(config, items):
    """With --fmbench-resume, the cells already in runs.csv are skipped."""
    from fmbench import results

    runs_file = config.fmbench_out / results.RUNS_FILE
    if not config.getoption("fmbench_resume") or not runs_file.exists():
        return
    done = set(results.read_runs(config.fmbench_out)["cell"])
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params
        spec = params and (params.get("baseline_spec") or params.get("tuner_spec"))
        if spec and spec.cell in done:
            item.add_marker(pytest.mark.skip(reason=f"{spec.cell} already in {runs_file} (--fmbench-resume)"))


@pytest.fixture(scope="session")
def fmbench_out(pytestconfig) -> Path:
    """The results folder. A fresh session (no --fmbench-resume) first moves earlier tables aside, losing nothing."""
    from fmbench import results

    out = pytestconfig.fmbench_out
    old = [out / name for name in (results.RUNS_FILE, results.TRIALS_FILE) if (out / name).exists()]
    if old and not pytestconfig.getoption("fmbench_resume"):
        archive = out / "previous" / datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        archive.mkdir(parents=True, exist_ok=True)
        for path in old:
            shutil.move(str(path), archive / path.name)
        pytestconfig.pluginmanager.get_plugin("terminalreporter").write_line(
            f"fmbench: earlier tables of {out} moved to {archive} (--fmbench-resume continues them instead)")
    return out


@pytest.fixture(scope="session")
def fmbench_split(pytestconfig):
    """The profile's data, loaded once per session."""
    from fmbench import data

    profile = profiles.get_profile(pytestconfig.getoption("fmbench_profile"))
    try:
        return data.load(data.resolve_data_dir(pytestconfig.getoption("fmbench_data_dir")), profile.sizes)
    except data.DataError as exc:
        pytest.exit(f"fmbench: {exc}", returncode=2)


@pytest.fixture(scope="session")
def fmbench_progress(pytestconfig):
    """Trial-by-trial progress straight to the terminal, past pytest's capture: a profile takes minutes."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"  {line}")

    return write


def pytest_terminal_summary(terminalreporter, config):
    """The comparison table, and the markdown report rebuilt from the stored rows."""
    from fmbench import report, results, summary

    out = config.fmbench_out
    if not (out / results.RUNS_FILE).exists() or config.getoption("benchmark_skip", False):
        return
    terminalreporter.write_sep("=", f"fmbench {config.getoption('fmbench_profile')}: test accuracy against the baseline")
    try:
        terminalreporter.write_line(summary.comparison_table(results.read_runs(out)))
        terminalreporter.write_line(f"tables: {out / results.RUNS_FILE}, {out / results.TRIALS_FILE}")
        terminalreporter.write_line(f"report: {report.write_report(out)}")
    except results.ResultsError as exc:
        terminalreporter.write_line(f"fmbench: no report: {exc}", red=True)
