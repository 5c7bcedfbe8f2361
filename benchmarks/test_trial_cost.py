"""What one trial costs: keras-tuner's stock trial path against fmbench's, on the same configurations.

Both paths train the same models on the profile's data with the same seed, alternating config by config
in one process so machine drift hits both alike. Stock keras-tuner (`kt.Tuner.run_trial`) runs one step
per TensorFlow call, validates and checkpoints after every improving epoch, and garbage-collects before
each build; fmbench's path (`keras_tuner._KerasTrials.run_trial`) runs 16 steps per call, traces the training
step once, not twice (`fmbench.models.training`), with no metric in it, scores the model once after the last epoch
in one eager pass (`fmbench.models.scoring`, no traced validation function), checkpoints only for Hyperband and
forces no garbage collection. The weights updates are the same, so the validation accuracies after the
last epoch must match.

Each configuration runs at 1 epoch and at 9 (a full quick-sized trial in the classic Hyperband setting),
on the profile's data: the 1-epoch trial is the floor every trial pays (building and tracing the model),
the difference is the cost of the later epochs. Every configuration runs in two rounds, the second with the
paths in the other order, and the medians are over all configurations and rounds: one timing of a trial
swings by a fifth or more on a shared 2-core machine.
"""

from __future__ import annotations

import statistics
import time

import pytest

from fmbench import profiles
from fmbench.models import mlp

EPOCHS = 9
ROUNDS = 2
# fmbench's median 9-epoch trial seconds as a share of the stock path's (the median over configurations and
# rounds of each pair's ratio). The goal is 0.5, and the committed run (results/trial-cost) is below it. The
# bound is looser so that a noisy hour does not fail the benchmark: it catches the savings lost wholesale (the
# ratio is 1 without them), and a smaller loss shows in the measured ratio (0.61 with the step traced twice).
TARGET_RATIO = 0.65
CONFIGS = (  # spanning the search space: narrow to wide, shallow to deep, with and without dropout
    mlp.BASELINE_HPS,
    {"num_layers": 1, "units_0": 512, "dropout_0": 0.2, "learning_rate": 3e-4},
    {"num_layers": 2, "units_0": 64, "dropout_0": 0.0, "units_1": 64, "dropout_1": 0.0, "learning_rate": 5e-3},
    {"num_layers": 2, "units_0": 256, "dropout_0": 0.3, "units_1": 128, "dropout_1": 0.1, "learning_rate": 1e-3},
    {
        "num_layers": 3,
        "units_0": 512,
        "dropout_0": 0.2,
        "units_1": 512,
        "dropout_1": 0.1,
        "units_2": 512,
        "dropout_2": 0.0,
        "learning_rate": 1e-3,
    },
    {
        "num_layers": 5,
        **{f"units_{i}": 96 for i in range(5)},
        **{f"dropout_{i}": 0.1 for i in range(5)},
        "learning_rate": 2e-3,
    },
)


def _tuners(tmp_path):
    import keras_tuner as kt

    from fmbench.search import keras_tuner

    def stock_model(hp):  # the search space as before: one step per call
        model = mlp.build_model(hp)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], steps_per_execution=1)
        return model

    def oracle():
        return kt.oracles.RandomSearchOracle(objective=keras_tuner.OBJECTIVE, max_trials=1, seed=1)

    stock = kt.Tuner(oracle=oracle(), hypermodel=stock_model, directory=tmp_path, project_name="stock", overwrite=True)
    from fmbench.models.trainer import KerasTrainer
    from fmbench.spec import Budget, RunSpec

    trainer = KerasTrainer(RunSpec(tuner="random", seed=1, budget=Budget(max_trials=1)))
    ours = keras_tuner._Tuner(
        oracle=oracle(),
        hypermodel=mlp.build_model,
        trainer=trainer,
        directory=tmp_path,
        project_name="fmbench",
        overwrite=True,
    )
    return stock, ours


def _trial(values: dict, trial_id: str):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.values.update(values)
    mlp.build_model(hp)  # registers the hyperparameters, taking the given values
    return kt.engine.trial.Trial(hyperparameters=hp, trial_id=trial_id)


def _timed(tuner, values: dict, trial_id: str, split, epochs: int, batch_size: int) -> tuple[float, float]:
    """Seconds of one trial and its validation accuracy after the last epoch."""
    import keras

    keras.utils.set_random_seed(1)
    started = time.perf_counter()
    outcome = tuner.run_trial(
        _trial(values, trial_id),
        split.x_train,
        split.y_train,
        validation_data=(split.x_val, split.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    val = outcome["val_accuracy"] if isinstance(outcome, dict) else outcome[0].history["val_accuracy"][-1]
    return seconds, float(val)


def test_trial_cost(benchmark, pytestconfig, fmbench_split, fmbench_progress, tmp_path):
    batch_size = profiles.get_profile(pytestconfig.getoption("fmbench_profile")).batch_size
    stock, ours = _tuners(tmp_path)
    for name, tuner in (("stock", stock), ("fmbench", ours)):  # untimed: TensorFlow's one-off start-up costs
        _timed(tuner, CONFIGS[0], f"{name}-warm-up", fmbench_split, 1, batch_size)
    rows = []

    def measure():
        paths = (("stock", stock), ("fmbench", ours))
        for round_ in range(ROUNDS):
            for index, values in enumerate(CONFIGS):
                row = {"config": index, "round": round_}
                for epochs in (1, EPOCHS):
                    for name, tuner in paths if round_ % 2 == 0 else paths[::-1]:
                        seconds, val = _timed(
                            tuner, values, f"{name}{index}r{round_}e{epochs}", fmbench_split, epochs, batch_size
                        )
                        row[f"{name}_{epochs}ep_seconds"], row[f"{name}_{epochs}ep_val"] = round(seconds, 3), val
                row["ratio"] = round(row[f"fmbench_{EPOCHS}ep_seconds"] / row[f"stock_{EPOCHS}ep_seconds"], 3)
                fmbench_progress(
                    f"[trial cost] round {round_ + 1}/{ROUNDS} config {index} ({values['num_layers']} layers): "
                    f"{EPOCHS} epochs stock {row[f'stock_{EPOCHS}ep_seconds']:.2f}s, "
                    f"fmbench {row[f'fmbench_{EPOCHS}ep_seconds']:.2f}s (x{row['ratio']:.2f}); "
                    f"1 epoch {row['stock_1ep_seconds']:.2f}s vs {row['fmbench_1ep_seconds']:.2f}s"
                )
                rows.append(row)

    benchmark.pedantic(measure, rounds=1, iterations=1)

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    later = EPOCHS - 1
    summary = {
        "profile": pytestconfig.getoption("fmbench_profile"),
        "epochs": EPOCHS,
        "rounds": ROUNDS,
        "train_size": len(fmbench_split.y_train),
        "median_trial_seconds_stock": median(f"stock_{EPOCHS}ep_seconds"),
        "median_trial_seconds_fmbench": median(f"fmbench_{EPOCHS}ep_seconds"),
        "median_ratio": median("ratio"),
        "median_first_epoch_seconds_stock": median("stock_1ep_seconds"),
        "median_first_epoch_seconds_fmbench": median("fmbench_1ep_seconds"),
    }
    if later:
        for name in ("stock", "fmbench"):
            summary[f"median_later_epoch_seconds_{name}"] = round(
                statistics.median(
                    (row[f"{name}_{EPOCHS}ep_seconds"] - row[f"{name}_1ep_seconds"]) / later for row in rows
                ),
                3,
            )
    benchmark.extra_info.update(summary, configs=rows)
    fmbench_progress(f"[trial cost] {summary}")

    # Same math: every configuration ends at the same validation accuracy on both paths.
    for row in rows:
        for epochs in (1, EPOCHS):
            assert row[f"fmbench_{epochs}ep_val"] == pytest.approx(
                row[f"stock_{epochs}ep_val"], abs=1.0 / len(fmbench_split.y_val)
            ), row
    assert summary["median_ratio"] <= TARGET_RATIO, (
        f"fmbench's trials cost x{summary['median_ratio']} of the stock path's (target x{TARGET_RATIO})"
    )
