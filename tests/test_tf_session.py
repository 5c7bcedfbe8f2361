"""fmbench.models.tf_session: a cleared session leaves no traced graph behind."""

from __future__ import annotations

import gc

from tensorflow.python.framework import func_graph, ops

from fmbench.models import mlp, tf_session


def _graphs_alive() -> int:
    gc.collect()
    return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())


def _custom_gradients() -> int:
    return sum(name.startswith("CustomGradient-") for name in ops._gradient_registry._registry)


def test_clear_session_frees_the_graphs_a_fit_traced(subset_split) -> None:
    tf_session.clear_session()
    before = _graphs_alive()
    model = mlp.make_model(mlp.BASELINE_HPS)
    model.fit(subset_split.x_train, subset_split.y_train, epochs=1, batch_size=64, verbose=0)
    del model
    assert _custom_gradients() > 0, "TensorFlow registers the optimizer's all-reduce gradient when it traces a step"
    assert _graphs_alive() > before, "and that registration keeps the traced graphs alive after the model is gone"
    tf_session.clear_session()
    assert _custom_gradients() == 0
    assert _graphs_alive() == before
