"""fmbench.models.mlp: the baseline model, the declared search space, and active_values (builds models, never fits)."""

from __future__ import annotations

import keras
import keras_tuner as kt
import pytest

from fmbench.models.mlp import BASELINE_HPS, active_values, build_model, make_model


def _layers(model: keras.Model) -> list[tuple]:
    """(kind, units or rate, activation name) for every layer after the input, in order."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Dense):
            out.append(("Dense", layer.units, layer.activation.__name__))
        elif isinstance(layer, keras.layers.Dropout):
            out.append(("Dropout", pytest.approx(layer.rate)))
        else:
            out.append((type(layer).__name__,))
    return out


def _lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_baseline_is_the_tutorial_model() -> None:
    model = make_model(BASELINE_HPS)
    assert _layers(model) == [("Flatten",), ("Dense", 128, "relu"), ("Dense", 10, "linear")]
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert _lr(model) == pytest.approx(1e-3, rel=1e-6)
    assert model.input_shape == (None, 28, 28)
    assert model.output_shape == (None, 10)
    # Flatten(784) -> 128 -> 10: (784 * 128 + 128) + (128 * 10 + 10)
    assert model.count_params() == 101_770
    # The last layer emits logits, so the loss must take logits.
    assert model.loss.get_config()["from_logits"] is True


def test_make_model_builds_each_layer_with_its_dropout() -> None:
    values = {
        "num_layers": 2,
        "units_0": 64,
        "dropout_0": 0.3,
        "units_1": 32,
        "dropout_1": 0.0,
        "learning_rate": 5e-4,
        "units_2": 512,
        "dropout_2": 0.5,
        "tuner/epochs": 4,
    }
    model = make_model(values)
    assert _layers(model) == [
        ("Flatten",),
        ("Dense", 64, "relu"),
        ("Dropout", 0.3),
        ("Dense", 32, "relu"),
        ("Dense", 10, "linear"),
    ], "layer 2's values and keras-tuner's keys must be ignored; dropout 0 adds no layer"
    assert _lr(model) == pytest.approx(5e-4, rel=1e-6)


def test_build_model_declares_the_search_space() -> None:
    hp = kt.HyperParameters()
    build_model(hp)
    space = {p.name: p for p in hp.space}
    layers = {f"{kind}_{i}" for i in range(5) for kind in ("units", "dropout")}
    assert set(space) == {"num_layers", "learning_rate"} | layers, "every layer's knobs, declared before a trial"
    # Layer i's knobs are active exactly when the model has more than i layers.
    for i in range(5):
        (condition,) = space[f"units_{i}"].conditions
        assert condition.name == "num_layers" and list(condition.values) == list(range(i + 1, 6))
    assert hp.is_active("units_0") and not hp.is_active("units_1"), "the default (one layer) uses layer 0 only"

    num_layers = space["num_layers"]
    assert isinstance(num_layers, kt.engine.hyperparameters.Int)
    assert (num_layers.min_value, num_layers.max_value, num_layers.step) == (1, 5, 1)

    units = space["units_0"]
    assert isinstance(units, kt.engine.hyperparameters.Int)
    assert (units.min_value, units.max_value, units.step) == (32, 512, 32)

    # A Choice of the whole grid: keras-tuner's Float(0.0, 0.5, step=0.1) never draws 0.5 (fmbench.space).
    dropout = space["dropout_0"]
    assert isinstance(dropout, kt.engine.hyperparameters.Choice)
    assert tuple(dropout.values) == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) and dropout.default == 0.0

    lr = space["learning_rate"]
    assert isinstance(lr, kt.engine.hyperparameters.Float)
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-2, "log")


def test_build_model_declares_one_units_and_dropout_per_layer() -> None:
    hp = kt.HyperParameters()
    hp.values.update(
        {
            "num_layers": 3,
            "units_0": 96,
            "units_1": 64,
            "units_2": 32,
            "dropout_0": 0.1,
            "dropout_1": 0.0,
            "dropout_2": 0.2,
            "learning_rate": 2e-3,
        }
    )
    model = build_model(hp)
    active = {p.name for p in hp.space if hp.is_active(p)}
    assert {"units_0", "units_1", "units_2", "dropout_0", "dropout_1", "dropout_2"} <= active
    assert "units_3" not in active
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [96, 64, 32, 10]
    assert _lr(model) == pytest.approx(2e-3, rel=1e-6)


def test_active_values_drops_tuner_keys_and_unused_layers() -> None:
    values = {
        "num_layers": 2,
        "learning_rate": 3e-3,
        "units_0": 64,
        "dropout_0": 0.1,
        "units_1": 128,
        "dropout_1": 0.2,
        "units_2": 256,
        "dropout_2": 0.3,
        "units_4": 32,
        "dropout_4": 0.4,  # left from earlier, deeper trials
        "tuner/epochs": 4,
        "tuner/initial_epoch": 2,
        "tuner/bracket": 1,
        "tuner/round": 1,
        "tuner/trial_id": "0003",
    }
    assert active_values(values) == {
        "num_layers": 2,
        "learning_rate": 3e-3,
        "units_0": 64,
        "dropout_0": 0.1,
        "units_1": 128,
        "dropout_1": 0.2,
    }
    assert list(active_values(values)) == sorted(active_values(values)), "keys sorted: stable JSON and tables"


def test_active_values_of_the_baseline_is_the_baseline() -> None:
    assert active_values(BASELINE_HPS) == BASELINE_HPS
    # ...and what it keeps is enough to rebuild the same model (the retrain relies on this).
    assert _layers(make_model(active_values({**BASELINE_HPS, "units_3": 64, "tuner/epochs": 2}))) == _layers(
        make_model(BASELINE_HPS)
    )
