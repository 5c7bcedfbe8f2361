"""fmbench.spec and fmbench.profiles: the contract's validation, labels, cell ids and profile expansion (no TF)."""

from __future__ import annotations

import dataclasses

import pytest

from fmbench import profiles
from fmbench.registry import BASELINE, DEFAULT_TUNERS, TUNER_NAMES, hyperband_first_bracket
from fmbench.spec import Budget, DataSizes, Profile, RunSpec, SpecError, parse_seeds


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, repr(message)
    return message


# --- Budget --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_trials", [0, -1, -10, 2.5, 2.0, "3", "abc", True, False, float("inf"), float("nan")])
def test_budget_rejects_bad_trial_counts(max_trials) -> None:
    with pytest.raises(SpecError) as excinfo:
        Budget(max_trials=max_trials)
    message = _one_line(excinfo)
    assert "max_trials" in message and ">= 1" in message
    assert repr(max_trials) in message  # says what it got


@pytest.mark.parametrize("max_seconds", [0, 0.0, -1, -0.5, float("nan"), float("inf"), True, "5"])
def test_budget_rejects_non_positive_seconds(max_seconds) -> None:
    with pytest.raises(SpecError) as excinfo:
        Budget(max_seconds=max_seconds)
    message = _one_line(excinfo)
    assert "max_seconds" in message and "> 0" in message


@pytest.mark.parametrize(
    "budget, label",
    [
        (Budget(max_trials=6), "trials6"),
        (Budget(max_seconds=30), "time30s"),
        (Budget(max_seconds=2.5), "time2.5s"),
        (Budget(max_trials=6, max_seconds=30), "trials6-time30s"),
        (Budget(), "none"),
    ],
)
def test_budget_labels(budget: Budget, label: str) -> None:
    assert budget.label == label


def test_budget_is_empty_only_without_limits() -> None:
    assert Budget().is_empty
    assert not Budget(max_trials=1).is_empty
    assert not Budget(max_seconds=1).is_empty


# --- seed lists ----------------------------------------------------------------------------------------------------


def test_seed_lists_take_ranges_in_the_order_given_each_seed_once() -> None:
    assert parse_seeds("1-3", "--seeds") == (1, 2, 3)
    assert parse_seeds("7, 2-4,3,10-10", "--seeds") == (7, 2, 3, 4, 10)
    assert len(parse_seeds("1-100", "--seeds")) == 100


@pytest.mark.parametrize("text", ["", "1,", "x", "0", "0-3", "5-2", "1-", "-3", "1.5", "1--3", "2-3-4"])
def test_bad_seed_lists_name_the_option_and_the_form(text) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_seeds(text, "--fmbench-seeds")
    message = _one_line(excinfo)
    assert message.startswith("--fmbench-seeds must be") and "1-100" in message and repr(text) in message


# --- RunSpec -------------------------------------------------------------------------------------------------------


def test_runspec_unknown_tuner_names_the_choices() -> None:
    with pytest.raises(SpecError) as excinfo:
        RunSpec(tuner="sobol", seed=1, budget=Budget(max_trials=2))
    message = _one_line(excinfo)
    assert "'sobol'" in message
    for name in (*TUNER_NAMES, BASELINE):
        assert name in message, f"the fix (the valid names) is missing: {message}"


@pytest.mark.parametrize("seed", [0, -1, True, 1.5])
def test_runspec_rejects_seeds_keras_tuner_would_randomise(seed) -> None:
    with pytest.raises(SpecError) as excinfo:
        RunSpec(tuner="random", seed=seed, budget=Budget(max_trials=2))
    message = _one_line(excinfo)
    assert "seed" in message and ">= 1" in message


@pytest.mark.parametrize("tuner", TUNER_NAMES)
def test_runspec_tuner_without_budget_is_an_error_naming_the_flags(tuner: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        RunSpec(tuner=tuner, seed=1)
    message = _one_line(excinfo)
    assert tuner in message and "--max-trials" in message and "--max-seconds" in message


def test_runspec_baseline_needs_no_budget() -> None:
    spec = RunSpec(tuner=BASELINE, seed=3)
    assert spec.budget.is_empty
    assert spec.cell == "baseline-seed3"


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("epochs", -1), ("hyperband_factor", 1)])
def test_runspec_rejects_non_positive_training_settings(field: str, value: int) -> None:
    with pytest.raises(SpecError) as excinfo:
        RunSpec(tuner="random", seed=1, budget=Budget(max_trials=1), **{field: value})
    assert field in _one_line(excinfo)


def test_datasizes_rejects_fewer_images_than_classes() -> None:
    with pytest.raises(SpecError) as excinfo:
        DataSizes(train=9)
    assert "train=9" in _one_line(excinfo)
    DataSizes(train=10, val=10, test=10)  # the smallest allowed


@pytest.mark.parametrize(
    "spec, cell",
    [
        (RunSpec(tuner="hyperband", seed=1, budget=Budget(max_trials=6)), "hyperband-trials6-seed1"),
        (RunSpec(tuner="random", seed=2, budget=Budget(max_seconds=30)), "random-time30s-seed2"),
        (
            RunSpec(tuner="bayesian", seed=5, budget=Budget(max_trials=3, max_seconds=9)),
            "bayesian-trials3-time9s-seed5",
        ),
        (RunSpec(tuner=BASELINE, seed=4), "baseline-seed4"),
        # The baseline's cell never carries a budget, even when one is given.
        (RunSpec(tuner=BASELINE, seed=4, budget=Budget(max_trials=6)), "baseline-seed4"),
    ],
)
def test_cell_ids(spec: RunSpec, cell: str) -> None:
    assert spec.cell == cell


# --- Profile -------------------------------------------------------------------------------------------------------


def _profile(**overrides) -> Profile:
    settings = dict(
        name="t",
        description="test",
        sizes=DataSizes(train=100, val=20, test=50),
        epochs=3,
        batch_size=32,
        seeds=(1, 2),
        tuners=("random", "hyperband"),
        budgets=(Budget(max_trials=4), Budget(max_seconds=10)),
    )
    settings.update(overrides)
    return Profile(**settings)


def test_profile_expand_order_and_count() -> None:
    specs = _profile().expand()
    assert [s.cell for s in specs] == [
        "baseline-seed1",
        "baseline-seed2",
        "random-trials4-seed1",
        "random-trials4-seed2",
        "random-time10s-seed1",
        "random-time10s-seed2",
        "hyperband-trials4-seed1",
        "hyperband-trials4-seed2",
        "hyperband-time10s-seed1",
        "hyperband-time10s-seed2",
    ]
    assert len({s.cell for s in specs}) == len(specs), "cell ids must be unique within a profile"


def test_profile_specs_carry_the_profile_settings() -> None:
    profile = _profile()
    for spec in profile.expand():
        assert (spec.profile, spec.sizes, spec.epochs, spec.batch_size) == ("t", profile.sizes, 3, 32)
        if spec.tuner == BASELINE:
            assert spec.budget.is_empty
        else:
            assert spec.budget in profile.budgets


def test_profile_spec_drops_the_budget_for_the_baseline() -> None:
    spec = _profile().spec(BASELINE, 1, Budget(max_trials=4))
    assert spec.budget.is_empty and spec.cell == "baseline-seed1"


# Profiles without one of keras-tuner's three tuners, and why: none other may drop one.
LEFT_OUT = {"replay-gate": {"bayesian"}}  # its Gaussian process costs 15 s a replayed seed; the trained gate has it


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_shipped_profiles_expand_to_valid_specs(name: str) -> None:
    profile = profiles.get_profile(name)
    specs = profile.expand()
    n_seeds, n_tuners, n_budgets = len(profile.seeds), len(profile.tuners), len(profile.budgets)
    assert len(specs) == n_seeds * (1 + n_tuners * n_budgets)
    assert all(seed >= 1 for seed in profile.seeds)
    assert set(DEFAULT_TUNERS) - LEFT_OUT.get(name, set()) <= set(profile.tuners) <= set(TUNER_NAMES)
    assert all(spec.profile == name for spec in specs)


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_shipped_profiles_let_hyperband_promote_under_every_trial_and_epoch_budget(name: str) -> None:
    profile = profiles.get_profile(name)
    trials, epochs = hyperband_first_bracket(profile.epochs, profile.hyperband_factor)
    assert trials >= 2 and profile.epochs >= profile.hyperband_factor, "a bracket with a promotion"
    for budget in profile.budgets:
        assert (budget.max_trials or trials) >= trials and (budget.max_epochs or epochs) >= epochs, budget.label


@pytest.mark.parametrize(
    "max_epochs, factor, expected", [(9, 3, (13, 21)), (3, 3, (4, 5)), (10, 3, (18, 44)), (4, 2, (7, 8))]
)
def test_hyperband_first_bracket_sizes(max_epochs: int, factor: int, expected: tuple[int, int]) -> None:
    # By hand: 9, 3 -> 9 trials x 1 epoch, 3 promoted to 3 (2 more each), 1 promoted to 9 (6 more).
    assert hyperband_first_bracket(max_epochs, factor) == expected


def test_profile_rejects_a_budget_that_ends_inside_hyperbands_first_bracket() -> None:
    with pytest.raises(SpecError, match="trials3 ends inside Hyperband's first bracket"):
        _profile(budgets=(Budget(max_trials=3),))
    with pytest.raises(SpecError, match="epochs4 ends inside"):
        _profile(budgets=(Budget(max_epochs=4),))
    _profile(budgets=(Budget(max_trials=4), Budget(max_epochs=5), Budget(max_seconds=1)))  # time: the runs show it
    _profile(tuners=("random",), budgets=(Budget(max_trials=1),))  # no Hyperband, no constraint


def test_profile_rejects_epochs_that_give_hyperband_no_promotion() -> None:
    with pytest.raises(SpecError, match="single round and no promotion"):
        _profile(epochs=2)


def test_default_profile_exists() -> None:
    assert profiles.get_profile(profiles.DEFAULT_PROFILE).name == profiles.DEFAULT_PROFILE


def test_get_profile_unknown_names_the_choices() -> None:
    with pytest.raises(SpecError) as excinfo:
        profiles.get_profile("huge")
    message = _one_line(excinfo)
    assert "'huge'" in message
    for name in profiles.PROFILES:
        assert name in message


def test_an_init_seed_offset_moves_the_weights_seed_and_keeps_the_search_seed() -> None:
    plain = RunSpec("random", 3, Budget(max_trials=4))
    shifted = dataclasses.replace(plain, init_seed_offset=1)
    assert plain.weight_seed == 3, "no offset: the run seed itself, as every committed row was made"
    assert shifted.weight_seed not in (3, plain.weight_seed) and shifted.weight_seed >= 1
    assert shifted.search_seed == plain.search_seed and shifted.cell == plain.cell, "the same search, the same cell"
    others = {dataclasses.replace(plain, seed=s).weight_seed for s in range(1, 50)}
    assert shifted.weight_seed not in others, "an offset never lands on another run seed's weights"
    with pytest.raises(SpecError, match="init seed offset must be an integer >= 0"):
        dataclasses.replace(plain, init_seed_offset=-1)
