"""One Keras backend's half of the trial-cost benchmark (benchmarks/test_trial_cost.py), in a process of its own:
Keras reads its backend once, so each backend needs a fresh interpreter.

    python benchmarks/trial_cost_worker.py BACKEND PROFILE DATA_DIR OUT_JSON CONFIG_INDEX...

Trains each chosen configuration (an index into configs()) through keras-tuner's stock trial path and fmbench's,
at 1 and EPOCHS epochs, on the profile's data, in ROUNDS rounds (the second with the paths in the other order, so
machine drift hits both alike), and writes one JSON row per trial to OUT_JSON. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

EPOCHS = 10
ROUNDS = 2

# Spanning the search space: narrow to wide, shallow to deep, with and without dropout. Index 0 is the baseline
# (fmbench.models.mlp.BASELINE_HPS, read once Keras may load), 4 the widest.
ONE_LAYER, THREE_LAYERS = 0, 4
OTHER_CONFIGS = (
    {"num_layers": 1, "units_0": 512, "dropout_0": 0.2, "learning_rate": 3e-4},
    {"num_layers": 2, "units_0": 64, "dropout_0": 0.0, "units_1": 64, "dropout_1": 0.0, "learning_rate": 5e-3},
    {"num_layers": 2, "units_0": 256, "dropout_0": 0.3, "units_1": 128, "dropout_1": 0.1, "learning_rate": 1e-3},
    {"num_layers": 3, **{f"units_{i}": 512 for i in range(3)}, "dropout_0": 0.2, "dropout_1": 0.1, "dropout_2": 0.0,
     "learning_rate": 1e-3},
    {"num_layers": 5, **{f"units_{i}": 96 for i in range(5)}, **{f"dropout_{i}": 0.1 for i in range(5)},
     "learning_rate": 2e-3},
)  # fmt: skip
CONFIG_COUNT = 1 + len(OTHER_CONFIGS)


def configs() -> tuple[dict, ...]:
    from fmbench.models import mlp

    return (mlp.BASELINE_HPS, *OTHER_CONFIGS)


def training_flops_per_image(values: dict) -> int:
    """Floating-point operations of one training step per image: the dense layers' matrix products, forward
    (2 x inputs x outputs each) and backward (twice that: the gradients of the inputs and of the weights).
    Biases, activations, dropout, the loss and Adam's update are left out: under 1% for these models."""
    widths = [28 * 28, *(int(values[f"units_{i}"]) for i in range(int(values["num_layers"]))), 10]
    return 3 * sum(2 * n_in * n_out for n_in, n_out in zip(widths, widths[1:]))


def _tuners(workdir: Path):
    import keras_tuner as kt

    from fmbench.models import mlp
    from fmbench.models.trainer import KerasTrainer
    from fmbench.search import keras_tuner
    from fmbench.spec import Budget, RunSpec

    def stock_model(hp):  # keras-tuner's usual hypermodel: accuracy traced into the step, one step per call
        model = mlp.build_model(hp)
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], steps_per_execution=1)
        return model

    def oracle():
        return kt.oracles.RandomSearchOracle(objective=keras_tuner.OBJECTIVE, max_trials=1, seed=1)

    stock = kt.Tuner(oracle=oracle(), hypermodel=stock_model, directory=workdir, project_name="stock", overwrite=True)
    ours = keras_tuner._Tuner(
        oracle=oracle(),
        hypermodel=mlp.build_model,
        trainer=KerasTrainer(RunSpec(tuner="random", seed=1, budget=Budget(max_trials=1))),
        directory=workdir,
        project_name="fmbench",
        overwrite=True,
    )
    return {"stock": stock, "fmbench": ours}


def _trial(values: dict, trial_id: str):
    import keras_tuner as kt

    from fmbench.models import mlp

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


def measure(backend_name: str, profile_name: str, data_dir: str, indices: list[int], workdir: Path) -> list[dict]:
    from fmbench import backend

    backend.select(backend_name)  # before Keras loads
    from fmbench import data, profiles

    profile = profiles.get_profile(profile_name)
    split = data.load(data.resolve_data_dir(data_dir), profile.sizes)
    paths = _tuners(workdir)
    for name, tuner in paths.items():  # untimed: the backend's one-off start-up costs
        _timed(tuner, configs()[0], f"{name}-warm-up", split, 1, profile.batch_size)
    rows = []
    for round_ in range(ROUNDS):
        order = list(paths) if round_ % 2 == 0 else list(paths)[::-1]
        for index in indices:
            values = configs()[index]
            for epochs in (1, EPOCHS):
                for name in order:
                    seconds, val = _timed(
                        paths[name], values, f"{name}{index}r{round_}e{epochs}", split, epochs, profile.batch_size
                    )
                    rows.append(
                        {
                            "backend": backend_name,
                            "backend_version": backend.version(),
                            "profile": profile_name,
                            "train_size": len(split.y_train),
                            "val_size": len(split.y_val),
                            "config": index,
                            "layers": values["num_layers"],
                            "round": round_,
                            "path": name,
                            "epochs": epochs,
                            "seconds": round(seconds, 3),
                            "val_accuracy": val,
                            "flops_per_epoch": training_flops_per_image(values) * len(split.y_train),
                        }
                    )
                    print(
                        f"[trial cost] {backend_name} {profile_name} round {round_ + 1}/{ROUNDS} config {index} "
                        f"({values['num_layers']} layers) {name} {epochs} epochs: {seconds:.2f}s val {val:.4f}",
                        file=sys.stderr,
                        flush=True,
                    )
    return rows


if __name__ == "__main__":
    import tempfile

    backend_arg, profile_arg, data_arg, out_arg, *indices = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="fmbench-trial-cost-") as tmp:
        measured = measure(backend_arg, profile_arg, data_arg, [int(i) for i in indices], Path(tmp))
    Path(out_arg).write_text(json.dumps(measured))
