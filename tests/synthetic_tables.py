"""Synthetic tables of learning curves whose truth is known, for the surrogate and replay tests (nothing trains).

Accuracy of configuration c after epoch e: quality(c) * (1 - 0.5**e), plus one seed's noise: z * noise_sd (a number,
or a function of the configuration's values) with one z per (configuration, seed) for the whole curve
(`shared_noise`) or a fresh z per epoch. Test accuracy is validation's
minus 0.01. An epoch's seconds grow with the weight count; each fit's build, trace and scoring seconds are fixed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fmbench.models import mlp
from fmbench.replay import configs, table
from fmbench.replay.surrogate import features

BUILD, COMPILE, SCORE = 0.5, 2.0, 0.25
LABELS = {  # label arrays standing for the three sets the table was measured on
    "train": np.arange(1000) % 10,
    "val": (np.arange(300) * 7) % 10,
    "test": (np.arange(300) * 3) % 10,
}


def learnable(values: dict) -> float:
    """A smooth truth: better with a larger learning rate, worse with more layers."""
    return 0.55 + 0.15 * (math.log10(values["learning_rate"]) + 4) - 0.02 * values["num_layers"]


def epoch_seconds(values: dict) -> float:
    return 0.1 + 1e-6 * 10 ** features(values)[-1]  # the last feature is log10 of the weight count


def make(
    n_configs: int = 80,
    epochs: int = 4,
    noise_configs: int = 30,
    noise_sd=0.01,
    quality=learnable,
    shared_noise: bool = True,
    seed: int = 0,
    labels: dict = LABELS,
    baseline_seeds: int = 0,
) -> table.Table:
    """A table of `n_configs` configurations and `epochs` epochs, said to be measured on `labels` (the three sets'
    label arrays: a replay scores only on labels its table names); with `baseline_seeds`, the baseline model first,
    as `fmbench table build` measures it."""
    rng = np.random.default_rng(seed)
    rows = []
    fits = [(configs.BASELINE_ID, mlp.BASELINE_HPS, s) for s in range(1, baseline_seeds + 1)]
    for config_id, values in enumerate(configs.draw(n_configs)):
        fits += [(config_id, values, s) for s in configs.seeds_of(config_id, noise_configs, 3)]
    for config_id, values, weight_seed in fits:
        noise = np.full(epochs, rng.standard_normal()) if shared_noise else rng.standard_normal(epochs)
        sd = noise_sd(values) if callable(noise_sd) else noise_sd
        val = [quality(values) * (1 - 0.5**e) + sd * noise[e - 1] for e in range(1, epochs + 1)]
        row = {"config_id": config_id, "seed": weight_seed, **values}
        row |= {"build_seconds": BUILD, "compile_seconds": COMPILE, "score_seconds": SCORE}
        for e in range(1, epochs + 1):
            row[f"val_accuracy_{e}"] = val[e - 1]
            row[f"test_accuracy_{e}"] = val[e - 1] - 0.01
            row[f"epoch_seconds_{e}"] = epoch_seconds(values) + (COMPILE if e == 1 else 0.0)
        rows.append(row | {"commit": "test", "finished_at": "now"})
    settings = table.Settings(
        epochs=epochs,
        batch_size=128,
        train_images=len(labels["train"]),
        val_images=len(labels["val"]),
        test_images=len(labels["test"]),
        backend="jax",
        machine="test machine",
        labels={name: table.label_fingerprint(y) for name, y in labels.items()},
        sobol_seed=configs.SOBOL_SEED,
    )
    return table.Table(settings, (), pd.DataFrame(rows, columns=table.columns(epochs)))


def save(directory: Path, measured: table.Table) -> Path:
    """Write a table into `directory` as `fmbench table build` does (header.json, table.csv.gz), for code that reads
    a folder."""
    table.create_or_check(directory, measured.settings)
    table.append_rows(directory, measured.rows.to_dict("records"))
    return directory
