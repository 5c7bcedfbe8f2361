"""fmbench.models.cnn: the HyperResNet / HyperXception space. Builds models; one e2e test trains two tiny trials."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmbench import data, protocol
from fmbench.models import cnn
from fmbench.spec import Budget, DataSizes, RunSpec, SpecError


@pytest.mark.parametrize("architecture", ["resnet", "xception"])
def test_each_architecture_takes_the_28x28_images_and_integer_labels(architecture: str) -> None:
    hp = kt.HyperParameters()
    hp.values["architecture"] = architecture
    model = cnn.build_model(hp)
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
    assert model.loss == "sparse_categorical_crossentropy"
    assert {h.name.split("/")[0] for h in hp.space if hp.is_active(h)} == {"architecture", architecture}, (
        "the other one's knobs are inactive"
    )
    assert hp.values["architecture"] == architecture
    rebuilt = cnn.make_model(dict(hp.values))
    assert rebuilt.count_params() == model.count_params()
    assert float(rebuilt.optimizer.learning_rate) == pytest.approx(hp.values[f"{architecture}/learning_rate"])


def test_baseline_is_the_small_convnet() -> None:
    model = cnn.make_model(cnn.BASELINE_HPS)
    assert model.input_shape == (None, 28, 28) and model.count_params() < 100_000


def test_cnn_space_is_for_keras_tuner_tuners_and_names_its_cells() -> None:
    assert RunSpec(tuner="random", seed=1, budget=Budget(max_trials=2), space="cnn").cell == "cnn-random-trials2-seed1"
    assert RunSpec(tuner="baseline", seed=1, space="cnn").cell == "cnn-baseline-seed1"
    with pytest.raises(SpecError, match="mlp space only"):
        RunSpec(tuner="tpe", seed=1, budget=Budget(max_trials=2), space="cnn")
    with pytest.raises(SpecError, match="unknown search space"):
        RunSpec(tuner="random", seed=1, budget=Budget(max_trials=2), space="vit")


@pytest.mark.e2e
def test_two_trial_hyperresnet_search_on_the_subset(subset_dir) -> None:
    # Grid search starts at the defaults (HyperResNet) and turns its last knob first: two HyperResNet trials.
    split = data.load(subset_dir, DataSizes(train=100, val=50, test=50))
    spec = RunSpec(
        tuner="grid", seed=1, budget=Budget(max_trials=2), epochs=1, batch_size=50, space="cnn", profile="test"
    )
    result = protocol.run(spec, split, progress=lambda line: None)
    assert result.error == "" and result.stopped_by == "trials" and result.trials_completed == 2
    assert all(t.hyperparameters["architecture"] == "resnet" and t.epochs == 1 for t in result.trials)
    assert result.best_hyperparameters["architecture"] == "resnet"
    assert result.test_accuracy is not None and result.retrain_epochs == 1
