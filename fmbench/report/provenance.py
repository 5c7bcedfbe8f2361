"""The report's header: which rows it was built from, and what they ran on (data, machine, libraries, commits),
with a flag for every commit no checkout can reproduce."""

from __future__ import annotations

import pandas as pd

from fmbench.machine import DIRTY, NO_COMMIT
from fmbench.report.records import plain

TIMESTAMP_PREFIX = "Generated at "


def header(runs: pd.DataFrame, trials: pd.DataFrame, generated_at: str) -> list[str]:
    sizes = sorted({f"{plain(r.train_size)} / {plain(r.val_size)} / {plain(r.test_size)}" for r in runs.itertuples()})
    return [
        f"# fmbench report: {_values(runs, 'profile')}",
        "",
        f"{TIMESTAMP_PREFIX}{generated_at} from {len(runs)} runs and {len(trials)} trials.",
        "",
        f"- Budgets: {'; '.join(sorted(set(runs['budget']) - {'none'})) or '–'}",
        f"- Data sizes (train / val / test images): {'; '.join(sizes)}",
        f"- Epochs per trial and retrain: {_values(runs, 'epochs')}; batch size: {_values(runs, 'batch_size')}",
        f"- Seeds: {', '.join(str(int(s)) for s in sorted(set(runs['seed'])))}",
        f"- Machine: {'; '.join(sorted({_machine(r) for r in runs.itertuples()}))}",
        f"- Keras backend: {_values(runs, 'keras_backend')}",
        *_replayed(runs),
        f"- Libraries: {'; '.join(sorted({_libraries(r) for r in runs.itertuples()}))}",
        f"- Commit(s): {_commits(runs)}",
        *_unreproducible(runs),
    ]


def _replayed(runs: pd.DataFrame) -> list[str]:
    """For replayed rows, where their accuracies and seconds come from: the machine above only looked them up."""
    if set(runs["trainer"]) != {"replay"}:
        return []
    return [
        f"- Replayed from the learning-curve table {_values(runs, 'replay_table')}: accuracies and seconds are the "
        "table's (its header names the machine that measured them); no model was trained for these rows"
    ]


def _values(runs: pd.DataFrame, column: str) -> str:
    values = sorted({plain(v) for v in runs[column]})
    return "; ".join(values) if values else "–"


def _machine(run) -> str:
    return f"{run.cpu_model} ({plain(run.cpu_cores)} cores), GPU: {run.gpu_model}"


def _libraries(run) -> str:
    return (
        f"tensorflow {run.tensorflow_version}, jax {run.jax_version}, keras {run.keras_version}, "
        f"keras-tuner {run.keras_tuner_version}, python {run.python_version}"
    )


def _commits(runs: pd.DataFrame) -> str:
    counts = runs["commit"].map(plain).value_counts()
    return "; ".join(f"{commit} ({_runs(counts[commit])})" for commit in sorted(counts.index)) or "–"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _unreproducible(runs: pd.DataFrame) -> list[str]:
    """A flag per commit no checkout can reproduce: the rows ran on code that differs from every commit."""
    counts = runs["commit"].map(plain).value_counts()
    flags = []
    for commit in sorted(counts.index):
        if commit.endswith(DIRTY):
            why = "uncommitted changes: not reproducible from a commit"
        elif commit in (NO_COMMIT, "–"):
            why = "no commit recorded: not reproducible from a commit"
        else:
            continue
        flags.append(f"- ⚠ {commit} ({counts[commit]} of {len(runs)} runs): {why}")
    return flags
