"""The benchmark matrix: one cell per tuner x budget x seed, and the baseline per seed.

Each cell is one real run; pytest-benchmark times it once (a search must not be calibrated and
repeated) and its quality and cost figures go into extra_info, so saved benchmark JSON carries them.
"""

from __future__ import annotations

import warnings

from fmbench import protocol, run_rows
from fmbench.report import summary


def _run_cell(spec, benchmark, split, progress, out, session_clock):
    if session_clock is not None:
        progress(session_clock.line(spec.cell))
    benchmark.group = "baseline" if spec.budget.is_empty else f"budget {spec.budget.label}"  # compare --group-by=group
    result = benchmark.pedantic(protocol.run, args=(spec, split), kwargs={"progress": progress}, rounds=1, iterations=1)
    run_rows.save_run(out, result)  # appended at once: an interrupted session keeps every finished cell
    benchmark.extra_info.update(summary.extra_info(result))
    if session_clock is not None:
        session_clock.cell_done()
    assert result.test_accuracy is not None, f"{spec.cell} failed: {result.error}"
    return result


def test_baseline(baseline_spec, benchmark, fmbench_split, fmbench_progress, fmbench_out, fmbench_session_clock):
    _run_cell(baseline_spec, benchmark, fmbench_split, fmbench_progress, fmbench_out, fmbench_session_clock)


def test_tuner(tuner_spec, benchmark, fmbench_split, fmbench_progress, fmbench_out, fmbench_session_clock):
    result = _run_cell(tuner_spec, benchmark, fmbench_split, fmbench_progress, fmbench_out, fmbench_session_clock)
    assert result.trials_completed >= 1
    # A "hyperband" row that never finished a bracket was a 1-epoch random search. Under a trial or epoch budget the
    # profile rules that out, so it is a bug and the cell fails; under a time budget alone it means this machine is
    # too slow for the deadline: the row is kept (brackets_completed=0) and the session warns.
    if result.brackets_completed == 0:
        message = f"{tuner_spec.cell}: no Hyperband bracket completed (no promotion) within {tuner_spec.budget.label}"
        budget = tuner_spec.budget
        assert budget.max_trials is None and budget.max_epochs is None, message
        warnings.warn(message + ": the machine is too slow for this time budget", stacklevel=1)
