"""The benchmark suite's plumbing as plain functions: which cells a session runs (profile, tuners, seeds, shard)
and which of them a resumed session skips. benchmarks/conftest.py only wires them into pytest."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from fmbench import profiles, results, resultset
from fmbench.registry import BASELINE, RUNNER_NAMES
from fmbench.replay import table
from fmbench.spec import RunSpec, SpecError, parse_seeds


def selected_specs(
    profile_name: str,
    tuners: str | None,
    seeds: str | None,
    init_seed_offset: int = 0,
    replay_table: str | None = None,
) -> list[RunSpec]:
    """The cells of a profile, or of the comma lists of tuners and seeds given (the baseline always runs), with
    the weights' seed shifted by init_seed_offset (the gate's noise runs; 0 everywhere else) and, for a replay
    profile, another table folder than its own."""
    profile = profiles.get_profile(profile_name)
    chosen_tuners = profile.tuners if tuners is None else tuple(_split_list(tuners))
    for tuner in chosen_tuners:
        if tuner not in RUNNER_NAMES or tuner == BASELINE:
            raise SpecError(
                f"unknown tuner {tuner!r} in --fmbench-tuners: choose from "
                f"{', '.join(n for n in RUNNER_NAMES if n != BASELINE)}"
            )
    chosen_seeds = profile.seeds if seeds is None else parse_seeds(seeds, "--fmbench-seeds")
    specs = profile.expand(chosen_tuners, chosen_seeds)  # RunSpec validates each seed
    table_folder = {} if replay_table is None else {"replay_table": replay_table}  # RunSpec refuses it unreplayed
    return [dataclasses.replace(spec, init_seed_offset=init_seed_offset, **table_folder) for spec in specs]


def check_replay_tables(specs: list[RunSpec]) -> None:
    """Each replay table the cells name can replay them: a missing or malformed one is a one-line SpecError before the
    first cell, not an error row in every cell."""
    asked = {(spec.replay_table, spec.epochs, spec.batch_size) for spec in specs if spec.replay_table}
    for folder, epochs, batch_size in sorted(asked):
        table.check_replayable(Path(folder), epochs, batch_size)


def shard(specs: list[RunSpec], text: str | None) -> list[RunSpec]:
    """The K-th of N round-robin shares of the expanded cells: the same cells on every host, every N-th one each."""
    if text is None:
        return specs
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise SpecError(
            f"--fmbench-shard must be K/N with 1 <= K <= N (e.g. 1/4 for the first of four shares), got {text!r}"
        )
    return specs[int(k) - 1 :: int(n)]


def finished_cells(directory: Path, keras_backend: str, trainer: str = "keras") -> set[str]:
    """Cells of a results folder whose current row (the results model's rule: the latest by started_at) has a test
    accuracy and no error; none in a folder without runs.csv. A cell whose current row failed (out of memory, a
    killed worker) runs again. A malformed folder, or one whose rows ran on another Keras backend or trainer than this
    session (resuming would mix two populations in one table), is a one-line ResultsError: resuming over rows it
    cannot read would skip or rerun cells by guesswork."""
    if not (Path(directory) / results.RUNS_FILE).exists():
        return set()
    loaded = resultset.load(directory)
    ran_on = loaded.runs["keras_backend"].iloc[0]  # one backend per folder: load refuses more
    if ran_on != keras_backend:
        raise results.ResultsError(
            f"{directory} holds rows of Keras on {ran_on} and this session runs {keras_backend}: resume with "
            f"--fmbench-backend {ran_on}, or write to another --fmbench-out"
        )
    trained_by = loaded.runs["trainer"].iloc[0]  # one trainer per folder: load refuses more
    if trained_by != trainer:
        raise results.ResultsError(
            f"{directory} holds rows trained by {trained_by} and this session's by {trainer}: resume with a "
            f"{trained_by} profile, or write to another --fmbench-out"
        )
    return set(loaded.ok["cell"])


class SessionClock:
    """How far a session of cells has come, and about how long the rest takes at the pace of the cells so far."""

    def __init__(self, total: int, clock=time.monotonic):
        self.total, self.done, self._clock = total, 0, clock
        self._started = clock()

    def cell_done(self) -> None:
        self.done += 1

    def line(self, cell: str) -> str:
        """E.g. 'cell 12 of 50 (random-epochs12-seed2), about 8 min left'."""
        if not self.done:
            return f"cell 1 of {self.total} ({cell})"
        left = (self._clock() - self._started) / self.done * (self.total - self.done)
        return f"cell {self.done + 1} of {self.total} ({cell}), about {max(1, round(left / 60))} min left"


def _split_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise SpecError(f"empty list {text!r}: give comma-separated values")
    return items
