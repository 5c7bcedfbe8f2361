"""Where model-based tuners' proposals sit against uniform draws: shares by hand, the uniform reference by drawing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmbench import resultset
from fmbench.report import document, proposals
from fmbench.resultset import ResultSet
from fmbench.space import MLP, Knob, from_unit

STANDARD = Path(__file__).resolve().parents[1] / "results" / "standard"
GOLDEN = Path(__file__).parent / "golden"
HEADING = "## Where the models' proposals sit"


def _layers(units: list[int], dropout: list[float]) -> dict:
    values = {"num_layers": len(units)}
    for i, (u, d) in enumerate(zip(units, dropout)):
        values |= {f"units_{i}": u, f"dropout_{i}": d}
    return values


# Four proposals of a model, shares worked out by hand in test_shares_match_a_hand_count.
MODEL = [
    # units_1 and dropout_1 are switched off by num_layers 1: they must not count (units 512 would move the ends).
    _layers([32], [0.0]) | {"units_1": 512, "dropout_1": 0.5, "learning_rate": 1e-4},
    _layers([512, 64], [0.5, 0.30000000000000004]) | {"learning_rate": 0.999e-2},  # keras-tuner's 0.3
    _layers([32, 32, 96], [0.0, 0.1, 0.2]) | {"learning_rate": 1.2e-3},  # log position 0.54: bin 5
    _layers([128] * 5, [0.1] * 5) | {"learning_rate": 2e-3},  # log position 0.65: bin 6
]
RANDOM_START = [_layers([256], [0.2]) | {"learning_rate": 5e-4}]


def _trial(run_id: str, tuner: str, proposed_by: str, hps: dict, parent: str = "") -> dict:
    return {
        "run_id": run_id,
        "tuner": tuner,
        "budget": "trials8",
        "hyperparameters": json.dumps(hps),
        "status": "COMPLETED",
        "parent_trial_id": parent,
        "proposed_by": proposed_by,
    }


def fake_results() -> ResultSet:
    """Only the columns the section reads: a tpe run on the MLP, plus rows it must leave out."""
    runs = pd.DataFrame(
        [
            {"run_id": "tpe-mlp", "tuner": "tpe", "space": "mlp"},
            {"run_id": "bayes-cnn", "tuner": "bayesian", "space": "cnn"},  # another space
            {"run_id": "random-mlp", "tuner": "random", "space": "mlp"},  # no model
        ]
    )
    trials = pd.DataFrame(
        [_trial("tpe-mlp", "tpe", "model", hps) for hps in MODEL]
        + [_trial("tpe-mlp", "tpe", "random", hps) for hps in RANDOM_START]
        + [
            _trial("tpe-mlp", "tpe", "model", MODEL[0], parent="0001"),  # a continuation, not a new proposal
            _trial("bayes-cnn", "bayesian", "model", MODEL[1]),
            _trial("random-mlp", "random", "", MODEL[1]),
            _trial("gone", "tpe", "model", MODEL[1]),  # a trial of no current run
        ]
    )
    return ResultSet((), runs, runs.iloc[0:0], trials, 0)


def _shares(row: proposals.ProposalRow) -> dict[str, proposals.GroupShares]:
    return {s.group: s for s in row.shares}


def test_groups_pool_the_layers_and_uniform_end_shares_are_the_spaces():
    groups = {g.name: g for g in proposals.knob_groups(MLP)}
    assert list(groups) == ["num_layers", "units", "dropout", "learning_rate"]
    assert [k.name for k in groups["units"].knobs] == [f"units_{i}" for i in range(5)]
    assert {name: g.uniform_ends for name, g in groups.items()} == pytest.approx(
        {"num_layers": 2 / 5, "units": 2 / 16, "dropout": 2 / 6, "learning_rate": 0.2}
    )
    assert [g.ends_label for g in groups.values()] == ["1 or 5", "32 or 512", "0.0 or 0.5", "lowest or highest 1/10"]


def test_uniform_draws_of_the_space_land_at_the_reference_shares():
    # The reference checked by drawing, not by reading the declaration: a wrong grid or bin edge moves these.
    rng = np.random.default_rng(26)
    draws = [from_unit(MLP, rng.random(len(MLP.knobs))) for _ in range(4000)]
    for shares in proposals.proposal_shares(draws, MLP):
        spread = 4 * np.sqrt(shares.uniform_ends * (1 - shares.uniform_ends) / shares.n)
        assert abs(shares.ends - shares.uniform_ends) < spread, shares
        assert shares.tv < 0.05, shares


def test_shares_match_a_hand_count():
    rows = proposals.proposal_rows(fake_results(), MLP)
    assert [(r.tuner, r.proposed_by, r.proposals, r.budgets) for r in rows] == [
        ("tpe", "model", 4, ("trials8",)),
        ("tpe", "random", 1, ("trials8",)),
    ]
    model = _shares(rows[0])
    # num_layers 1, 2, 3, 5: ends 2 of 4; TV = 1 - sum(min(share, 1/5)) = 1 - 4/5.
    assert (model["num_layers"].n, model["num_layers"].ends, model["num_layers"].tv) == (4, 0.5, pytest.approx(0.2))
    # units 32, 512, 64, 32, 32, 96, 128 x5: 11 values, ends 4; five values hit, each above 1/16: TV = 1 - 5/16.
    assert (model["units"].n, model["units"].ends) == (11, pytest.approx(4 / 11))
    assert model["units"].tv == pytest.approx(11 / 16)
    # dropout 0.0, 0.5, 0.3, 0.0, 0.1, 0.2, 0.1 x5: ends 3 of 11; TV = 1 - (1/6 + 1/6 + 3/11).
    assert (model["dropout"].n, model["dropout"].ends) == (11, pytest.approx(3 / 11))
    assert model["dropout"].tv == pytest.approx(13 / 33)
    # learning rate in tenths of its log range: bins 0, 9, 5, 6: ends 2 of 4; TV = 1 - 4/10.
    assert (model["learning_rate"].ends, model["learning_rate"].tv) == (0.5, pytest.approx(0.6))
    control = _shares(rows[1])
    assert (control["num_layers"].ends, control["num_layers"].tv) == (1.0, pytest.approx(0.8))
    assert (control["units"].ends, control["units"].tv) == (0.0, pytest.approx(15 / 16))


def test_values_off_the_space_are_not_counted():
    units = {g.name: g for g in proposals.knob_groups(MLP)}["units"]
    assert [units.bin_of(v) for v in (32, 512.0, 100, "32", True, None)] == [0, 15, None, None, None, None]
    rate = {g.name: g for g in proposals.knob_groups(MLP)}["learning_rate"]
    assert [rate.bin_of(v) for v in (1e-4, 1e-2, 1.2e-3, 5e-5, 0.02)] == [0, 9, 5, None, None]


def test_a_group_refuses_knobs_of_different_ranges():
    with pytest.raises(ValueError, match="differ in range"):
        proposals.KnobGroup("units", (Knob("a", "int", 32, 512, step=32), Knob("b", "int", 16, 512, step=16)))


def test_section_table_and_its_omission():
    lines = proposals.section(fake_results(), MLP)
    text = "\n".join(lines)
    assert lines[0] == HEADING and "(uniform 2/16)" in text and "(uniform 2/6)" in text and "(uniform 2/10)" in text
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| tpe")]
    assert rows[0] == ["tpe", "trials8", "model", "4", "50% · 0.20 (n=4)", "36% · 0.69 (n=11)", "27% · 0.39 (n=11)"] + [
        "50% · 0.60 (n=4)"
    ]
    rs = fake_results()
    only_random = ResultSet((), rs.runs, rs.superseded, rs.trials[rs.trials["proposed_by"] != "model"], 0)
    assert proposals.section(only_random, MLP) == []  # a random start alone: no model to show
    # The golden folder's tuners record no proposals: the report leaves the section out.
    assert HEADING not in document.render(resultset.load(GOLDEN), generated_at="2025-01-01T00:00:00Z")


def test_committed_standard_results():
    rs = resultset.load(STANDARD)  # read-only
    rows = proposals.proposal_rows(rs, MLP)
    assert [(r.tuner, r.proposed_by, r.proposals) for r in rows] == [
        ("bayesian", "model", 25),
        ("bayesian", "random", 25),
        ("tpe", "model", 25),
        ("tpe", "random", 25),
    ]
    for row in rows:
        hps = [
            json.loads(t)
            for t in rs.trials[
                (rs.trials.tuner == row.tuner) & (rs.trials.proposed_by == row.proposed_by)
            ].hyperparameters
        ]
        active_dropout = [h[f"dropout_{i}"] for h in hps for i in range(h["num_layers"])]
        shares = _shares(row)
        assert shares["units"].n == shares["dropout"].n == len(active_dropout)
        assert shares["dropout"].ends == pytest.approx(np.mean([d in (0.0, 0.5) for d in active_dropout]))
    tpe = _shares(rows[2])
    assert tpe["dropout"].ends > 1.5 * tpe["dropout"].uniform_ends  # the finding: TPE's model piles onto the ends
    assert HEADING in document.render(rs, generated_at="2025-01-01T00:00:00Z")
