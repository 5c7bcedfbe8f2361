"""fmbench.models.scoring: the eager score equals what Keras's own evaluate reports, whatever the chunking."""

from __future__ import annotations

import keras
import pytest

from fmbench.models import cnn, mlp, scoring


def _keras_evaluate(model: keras.Model, x, y) -> tuple[float, float]:
    loss, accuracy = model.evaluate(x, y, batch_size=64, verbose=0)
    return accuracy, loss


@pytest.mark.e2e
@pytest.mark.parametrize("chunk", [scoring.CHUNK, 7])  # 7 leaves a short last chunk
def test_score_is_keras_accuracy_and_loss(subset_split, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(scoring, "CHUNK", chunk)
    keras.utils.set_random_seed(3)
    model = mlp.make_model({**mlp.BASELINE_HPS, "dropout_0": 0.5}, metrics=("accuracy",))  # dropout off when scoring
    model.fit(subset_split.x_train, subset_split.y_train, epochs=1, batch_size=64, verbose=0)
    accuracy, loss = scoring.score(model, subset_split.x_val, subset_split.y_val)
    expected_accuracy, expected_loss = _keras_evaluate(model, subset_split.x_val, subset_split.y_val)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert 0.2 < accuracy < 1.0, "a trained epoch scores above chance"


def test_score_with_a_loss_named_at_compile(subset_split) -> None:
    # The cnn baseline outputs probabilities and compiles its loss by name: a function, one value per image.
    keras.utils.set_random_seed(3)
    model = cnn.make_model(cnn.BASELINE_HPS)
    x, y = subset_split.x_val[:100], subset_split.y_val[:100]
    accuracy, loss = scoring.score(model, x, y)
    expected_accuracy, expected_loss = _keras_evaluate(model, x, y)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
