"""fmbench.replay.trainer on a synthetic table (tests/synthetic_tables.py): scores from the table or the surrogate,
curves that continue across a resume (Hyperband's promotions), callbacks that see every epoch and stop the fit, and
a clock that advances by the table's seconds. Not marked e2e: tests/conftest.py refuses any Keras fit here, so every
test also shows that a replay never trains."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import numpy as np
import pytest
import synthetic_tables
from synthetic_tables import BUILD, COMPILE, LABELS, SCORE

from fmbench.budget import BudgetCallback, SearchClock
from fmbench.models.trainer import ResumableTrainer
from fmbench.replay.surrogate import Surrogate
from fmbench.replay.trainer import ReplayClock, ReplayError, ReplayTrainer
from fmbench.space import MLP
from fmbench.spec import Budget

Y_TRAIN, Y_VAL, Y_TEST = LABELS["train"], LABELS["val"], LABELS["test"]
EPOCH_STEPS = 8  # 1000 images in batches of 128: 8 steps, one call of 16 steps per epoch


@pytest.fixture(scope="module")
def replayed():
    table = synthetic_tables.make(n_configs=60, noise_configs=20, noise_sd=0.01)
    return table, Surrogate.fit(table)


def _trainer(replayed, weight_seed: int = 1) -> ReplayTrainer:
    table, surrogate = replayed
    return ReplayTrainer(table, surrogate, weight_seed, ReplayClock(wall=lambda: 0.0))


def _train(trainer, values, epochs, **kwargs):
    return trainer.train(values, None, Y_TRAIN, epochs=epochs, batch_size=128, **kwargs)


UNMEASURED = {"num_layers": 2, "units_0": 320, "dropout_0": 0.5, "units_1": 64, "dropout_1": 0.1, "learning_rate": 3e-3}


@pytest.mark.parametrize("method", ["reset", "train", "score", "save"])
def test_it_has_the_resumable_trainer_seams_signatures(replayed, method):
    trainer = _trainer(replayed)
    expected = inspect.signature(getattr(ResumableTrainer, method))
    assert inspect.signature(getattr(ReplayTrainer, method)).parameters.keys() == expected.parameters.keys()
    assert trainer.baseline == {"num_layers": 1, "units_0": 128, "dropout_0": 0.0, "learning_rate": 1e-3}


def test_a_measured_configuration_scores_one_of_its_measured_seeds(replayed):
    table, _ = replayed
    config = table.config(0)  # configuration 0 is a noise configuration: three measured seeds
    measured = {(table.series("val_accuracy")[i, 2], table.series("test_accuracy")[i, 2]) for i in range(3)}
    seen = set()
    for weight_seed in range(1, 9):
        trainer = _trainer(replayed, weight_seed)
        trained = _train(trainer, config, 3)
        seen.add((trainer.score(trained, None, Y_VAL)[0], trainer.score(trained, None, Y_TEST)[0]))
    assert seen <= measured and len(seen) >= 2  # different runs replay different measured seeds


def test_the_baseline_replays_the_tables_measured_baseline_fits():
    anchored = synthetic_tables.make(n_configs=60, noise_configs=20, baseline_seeds=5)
    surrogate = Surrogate.fit(anchored)
    trainers = [ReplayTrainer(anchored, surrogate, seed, ReplayClock(wall=lambda: 0.0)) for seed in range(1, 13)]
    measured = set(anchored.series("test_accuracy")[:5, -1])
    seen = {t.score(_train(t, t.baseline, 4), None, Y_TEST)[0] for t in trainers}
    assert seen <= measured and len(seen) >= 3  # each run's baseline is one of the 5 measured fits


def test_an_unmeasured_configuration_scores_the_surrogate_with_its_seeds_noise(replayed):
    _, surrogate = replayed
    scores = []
    for weight_seed in range(1, 30):
        trainer = _trainer(replayed, weight_seed)
        scores.append(trainer.score(_train(trainer, UNMEASURED, 4), None, Y_VAL)[0])
    assert np.mean(scores) == pytest.approx(surrogate.mean([UNMEASURED], 4)[0], abs=0.006)
    assert 0.004 < np.std(scores) < 0.02  # the measured seed noise (0.01), not zero and not more
    again = _trainer(replayed, 1)
    assert again.score(_train(again, UNMEASURED, 4), None, Y_VAL)[0] == scores[0]  # a run's seed replays alike


@pytest.mark.parametrize("which", ["measured", "unmeasured"])
def test_a_resumed_fit_continues_its_own_curve(replayed, tmp_path, which):
    values = replayed[0].config(1) if which == "measured" else UNMEASURED
    straight = _trainer(replayed, 5)
    whole = _train(straight, values, 4)
    promoted = _trainer(replayed, 5)
    parent = _train(promoted, values, 2)
    path = str(tmp_path / "trial_0" / "checkpoint.weights.h5")
    promoted.save(parent, path)
    child = _train(promoted, {**values, "tuner/epochs": 4}, 4, initial_epoch=2, resume_from=path)
    assert (child.epochs, child.model.epochs_done) == (2, 4)  # the promotion trains only the epochs it adds
    for y in (Y_VAL, Y_TEST):
        assert promoted.score(child, None, y) == pytest.approx(straight.score(whole, None, y), nan_ok=True)
    assert promoted.score(parent, None, Y_VAL)[0] != promoted.score(child, None, Y_VAL)[0]
    with pytest.raises(ReplayError, match="its own parent"):
        _train(promoted, {**values, "learning_rate": 0.009}, 4, initial_epoch=2, resume_from=path)


def test_the_clock_advances_by_the_table_seconds(replayed):
    table, _ = replayed
    trainer = _trainer(replayed)
    config = table.config(30)  # a configuration measured with one seed
    epoch = table.series("epoch_seconds")[30]  # epoch 1 includes the trace
    trained = _train(trainer, config, 3)
    assert trainer.clock() == pytest.approx(BUILD + epoch[0] + epoch[1] + epoch[2])
    trainer.score(trained, None, Y_VAL)
    trainer.score(trained, None, Y_TEST)  # the model's inference is traced once
    assert trainer.clock() == pytest.approx(BUILD + epoch[:3].sum() + SCORE)


def test_keras_tuner_set_up_declares_the_space_and_pays_a_build_from_the_table_but_builds_nothing(replayed):
    import keras_tuner as kt

    trainer = _trainer(replayed)
    hp = kt.HyperParameters()
    values = trainer.hypermodel(hp)  # what keras-tuner calls per layer count while it sets a tuner up
    assert {knob.name for knob in MLP.knobs} == {declared.name for declared in hp.space}
    assert isinstance(values, dict) and values == MLP.active(values)  # values, no Keras model
    assert trainer.clock() == pytest.approx(BUILD, abs=0.01)  # the surrogate of the table's build seconds


def test_a_promotion_pays_a_new_build_and_trace(replayed, tmp_path):
    table, _ = replayed
    trainer = _trainer(replayed)
    epoch = table.series("epoch_seconds")[30]
    parent = _train(trainer, table.config(30), 2)
    trainer.save(parent, str(tmp_path / "parent"))
    before = trainer.clock()
    _train(trainer, table.config(30), 4, initial_epoch=2, resume_from=str(tmp_path / "parent"))
    assert trainer.clock() - before == pytest.approx(BUILD + COMPILE + epoch[2] + epoch[3])


def test_wall_time_inside_a_replay_is_not_counted_and_outside_it_is():
    wall = [100.0]
    clock = ReplayClock(wall=lambda: wall[0])
    with clock.replaying():
        wall[0] += 5.0  # the lookups' own time
        clock.advance(3.0)  # the table's seconds
        assert clock() == 103.0
    assert clock() == 103.0
    wall[0] += 2.0  # the search's own work (a proposal)
    assert clock() == 105.0


def test_a_time_budget_stops_the_fit_inside_the_epoch_it_runs_out(replayed):
    table, _ = replayed
    trainer = _trainer(replayed)
    epoch = table.series("epoch_seconds")[30]
    deadline = BUILD + epoch[0] + epoch[1] + 0.5 * epoch[2]  # half way through the third epoch
    clock = SearchClock(Budget(max_seconds=deadline), clock=trainer.clock)
    budget = BudgetCallback(clock)
    trained = _train(trainer, table.config(30), 4, callbacks=[budget])
    assert budget.cut and budget.epochs == 2 and trained.model.epochs_done == 2  # the cut epoch is not counted
    assert clock.out_of_time() and clock.elapsed() <= BUILD + epoch[:3].sum() + 1e-9
    assert trained.model.stop_training


def test_an_epoch_budget_stops_the_fit_after_its_last_epoch(replayed):
    clock = SearchClock(Budget(max_epochs=3), clock=ReplayClock(wall=lambda: 0.0))
    budget = BudgetCallback(clock)
    trainer = _trainer(replayed)
    trained = _train(trainer, UNMEASURED, 4, callbacks=[budget])
    assert (budget.epochs, budget.cut, trained.model.epochs_done, trained.epochs) == (3, True, 3, 3)


class _Seen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.hooks: list[tuple] = []

    def on_epoch_end(self, epoch, logs=None):
        self.hooks.append((epoch, dict(logs or {}), self.params["epochs"]))

    def on_train_batch_end(self, batch, logs=None):
        self.hooks.append(("batch", batch))


def test_callbacks_see_every_step_group_and_epoch_with_keras_validation_logs(replayed):
    trainer = _trainer(replayed)
    seen = _Seen()
    trained = _train(trainer, UNMEASURED, 3, callbacks=[seen], validation_data=(None, Y_VAL), metrics=("accuracy",))
    epochs = [hook for hook in seen.hooks if hook[0] != "batch"]
    assert [epoch for epoch, _, _ in epochs] == [0, 1, 2] and all(planned == 3 for *_, planned in epochs)
    assert seen.hooks.count(("batch", EPOCH_STEPS - 1)) == 3  # one call per group of 16 steps
    assert epochs[-1][1]["val_accuracy"] == trainer.score(trained, None, Y_VAL)[0]  # what Optuna's pruner reads


@pytest.mark.parametrize("labels, words", [(Y_TRAIN, "validation or test"), (np.arange(300) % 10, "not the table")])
def test_scores_only_on_the_sets_the_table_measured(replayed, labels, words):
    trainer = _trainer(replayed)
    trained = _train(trainer, UNMEASURED, 2)
    with pytest.raises(ReplayError, match=words):
        trainer.score(trained, None, labels)


def test_training_past_the_tables_epochs_or_on_other_images_is_refused(replayed):
    trainer = _trainer(replayed)
    with pytest.raises(ReplayError, match="measured 4 epochs"):
        _train(trainer, UNMEASURED, 5)
    with pytest.raises(ReplayError, match="train"):
        trainer.train(UNMEASURED, None, Y_VAL, epochs=2, batch_size=128)


def test_seconds_come_from_a_configurations_first_fit_not_its_cached_later_seeds(replayed):
    table, _ = replayed
    rows = table.rows.copy()
    later = rows["seed"] > 1  # in a real build these find the configuration's shapes compiled
    rows.loc[later, ["build_seconds", "compile_seconds", "score_seconds"]] = 0.01
    rows.loc[later, [f"epoch_seconds_{e}" for e in range(1, 5)]] = 0.01
    cached = dataclasses.replace(table, rows=rows)
    surrogate = Surrogate.fit(cached)
    assert surrogate.fit_seconds(UNMEASURED).build == pytest.approx(BUILD)
    epoch = table.series("epoch_seconds")[0]  # configuration 0's seed 1
    for weight_seed in range(1, 6):  # whichever measured seed's accuracy it replays
        trainer = ReplayTrainer(cached, surrogate, weight_seed, ReplayClock(wall=lambda: 0.0))
        _train(trainer, table.config(0), 2)
        assert trainer.clock() == pytest.approx(BUILD + epoch[0] + epoch[1])


def test_a_fit_cut_inside_its_first_epoch_reports_no_validation_score(replayed):
    trainer = _trainer(replayed)
    budget = BudgetCallback(SearchClock(Budget(max_seconds=BUILD + 0.01), clock=trainer.clock))
    seen = _Seen()
    trained = _train(trainer, UNMEASURED, 3, callbacks=[budget, seen], validation_data=(None, Y_VAL))
    assert budget.cut and budget.epochs == 0 and trained.model.epochs_done == 0
    assert [hook for hook in seen.hooks if hook[0] != "batch"] == [(0, {}, 3)]  # Keras's hook, with no score to log
