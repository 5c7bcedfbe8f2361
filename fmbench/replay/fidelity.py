"""How far a surrogate can be trusted: fitted on part of a table's configurations, judged on the others (never on a
seed of a configuration it saw), and written as markdown into the table's folder.

The figures a replay leans on are those of the final validation accuracy, which picks each search's best: R^2,
and the rank agreements (Spearman, Kendall's tau) that decide which configuration a tuner keeps. The seeds'
own agreement on the same figure is the ceiling no surrogate of one seed's curve can beat.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import r2_score

from fmbench import atomic
from fmbench.replay.configs import BASELINE_ID
from fmbench.replay.surrogate import MODEL, MODELS, Surrogate, first_fits, pooled_seed_sd, row_seconds, seed_variances
from fmbench.replay.table import Table, TableError

FIDELITY_FILE = "fidelity.md"
MODELS_FILE = "models.md"
COMPARE_SPLITS = 5  # held-out splits each candidate model is judged on
MIN_HELD_OUT = 3  # ranks of fewer configurations say nothing
DIVERGED = 0.5  # a final accuracy below this is a fit that diverged (chance is 0.1)


@dataclass(frozen=True)
class Agreement:
    """How well predictions match observations: R^2, Spearman's rho and Kendall's tau, over `count` pairs."""

    r2: float
    spearman: float
    kendall: float
    count: int


def agreement(observed, predicted) -> Agreement:
    observed, predicted = np.asarray(observed, dtype=float), np.asarray(predicted, dtype=float)
    return Agreement(
        r2=float(r2_score(observed, predicted)),
        spearman=float(stats.spearmanr(observed, predicted).statistic),
        kendall=float(stats.kendalltau(observed, predicted).statistic),
        count=len(observed),
    )


@dataclass(frozen=True)
class Fidelity:
    """A surrogate judged on held-out configurations (seed means), with the table's measured seed noise."""

    train_configs: int
    held_out_configs: int
    final_val: Agreement
    final_test: Agreement
    top_val: Agreement  # final validation accuracy where the surrogate is highest: where tuners choose
    top_shortfall: float  # mean measured minus predicted there, in accuracy: what a replay's winners are flattered by
    every_epoch_val: Agreement  # every (held-out configuration, epoch): the curves' shape, for Hyperband's rungs
    epoch_seconds: Agreement  # a later epoch's seconds, what a time budget spends
    pooled_sd_val: tuple[float, ...]  # per epoch, the one sd a noise model blind to the configuration would use
    pooled_sd_test: tuple[float, ...]
    modelled_sd_val: tuple[float, ...]  # per epoch, the median modelled sd over the held-out configurations
    noise_configs: int
    noise_check: NoiseCheck | None  # the noise model on held-out configurations measured with several seeds
    seed_correlation: tuple[float, ...]  # corr. of a seed's standardised deviation at each epoch with the last's
    val_test_correlation: float | None  # corr. of a seed's final validation and test deviations (sample shares one)
    seed_agreement: Agreement | None  # seed 1 against seed 2's final validation accuracy: the ceiling
    baseline: Baseline | None  # the measured baseline against the surrogate's prediction of it


@dataclass(frozen=True)
class NoiseCheck:
    """The noise model fitted without them, on the held-out configurations with several seeds, at the last epoch:
    how many measured validation variances lie inside the central 90% a calibrated model gives a variance of their
    degrees of freedom (chi-square), and whether the model ranks them as noisy as they are."""

    inside: int
    spearman: float
    count: int


@dataclass(frozen=True)
class Baseline:
    """The baseline model's final accuracies, measured (mean and sd over its seeds) and predicted by the surrogate
    fitted on the Sobol configurations alone: the error a replay would carry into every difference from the baseline
    had the table not measured it."""

    seeds: int
    val_mean: float
    val_sd: float
    test_mean: float
    test_sd: float
    predicted_val: float
    predicted_test: float
    modelled_val_sd: float  # the seed sd of its final validation accuracy by the same surrogate's noise model


def split_configs(table: Table, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) ids of the Sobol configurations: a seeded shuffle, `holdout` of them held out. The
    baseline is in neither: it is no uniform draw, and `evaluate` judges it apart."""
    ids = np.unique(table.rows["config_id"].to_numpy())
    ids = ids[ids != BASELINE_ID]
    held = round(holdout * len(ids))
    if not 0 < holdout < 1 or held < MIN_HELD_OUT or len(ids) - held < 2:
        raise TableError(
            f"the table has {len(ids)} configurations; holding out {holdout:g} of them leaves {held} to judge and "
            f"{len(ids) - held} to fit: measure more (--configs) or choose a holdout in (0, 1) that leaves at least "
            f"{MIN_HELD_OUT} and 2"
        )
    shuffled = np.random.default_rng(seed).permutation(ids)
    return np.sort(shuffled[held:]), np.sort(shuffled[:held])


def subset(table: Table, config_ids) -> Table:
    return dataclasses.replace(table, rows=table.rows[table.rows["config_id"].isin(config_ids)].reset_index(drop=True))


def evaluate(table: Table, holdout: float = 0.2, seed: int = 0, model: str = MODEL) -> Fidelity:
    """Fit the surrogate on all but `holdout` of the configurations and judge it on the rest; the seed noise's
    figures describe the whole table, and its model is judged on the held-out configurations too."""
    fit_ids, held_ids = split_configs(table, holdout, seed)
    surrogate = Surrogate.fit(subset(table, fit_ids), random_state=seed, model=model)
    held = subset(table, held_ids)
    means = held.rows.groupby("config_id", sort=True)  # one observation per configuration: its seeds' mean
    # Each configuration's first fit, in config_id order as `means`: its seconds are the ones a replay uses.
    first = held.rows[first_fits(held)].sort_values("config_id").index.to_numpy()
    configs = [held.config(i) for i in first]
    epochs = table.settings.epochs
    observed = {
        name: means[[f"{name}_{e}" for e in range(1, epochs + 1)]].mean().to_numpy()
        for name in ("val_accuracy", "test_accuracy")
    }
    predicted_val = np.stack([surrogate.mean(configs, e, "val") for e in range(1, epochs + 1)], axis=1)
    top = _top_quarter(predicted_val[:, -1])
    steady = row_seconds(held)["epoch"][first]
    pooled = pooled_seed_sd(seed_variances(table))
    return Fidelity(
        train_configs=len(fit_ids),
        held_out_configs=len(held_ids),
        final_val=agreement(observed["val_accuracy"][:, -1], predicted_val[:, -1]),
        final_test=agreement(observed["test_accuracy"][:, -1], surrogate.mean(configs, epochs, "test")),
        top_val=agreement(observed["val_accuracy"][top, -1], predicted_val[top, -1]),
        top_shortfall=float(np.mean(observed["val_accuracy"][top, -1] - predicted_val[top, -1])),
        every_epoch_val=agreement(observed["val_accuracy"].reshape(-1), predicted_val.reshape(-1)),
        epoch_seconds=agreement(steady, [surrogate.fit_seconds(c).epoch for c in configs]),
        pooled_sd_val=tuple(map(float, pooled["val"])),
        pooled_sd_test=tuple(map(float, pooled["test"])),
        modelled_sd_val=tuple(float(np.median(surrogate.noise_sd(configs, e))) for e in range(1, epochs + 1)),
        noise_configs=len(seed_variances(table).config_ids),
        noise_check=_noise_check(held, surrogate),
        seed_correlation=tuple(map(float, (surrogate.epoch_mixing @ surrogate.epoch_mixing.T)[:, -1])),
        val_test_correlation=_val_test_correlation(table, surrogate),
        seed_agreement=_seed_agreement(table),
        baseline=_baseline(table, surrogate),
    )


def _noise_check(held: Table, surrogate: Surrogate) -> NoiseCheck | None:
    measured = seed_variances(held)
    if len(measured.config_ids) < MIN_HELD_OUT:
        return None
    configs = [held.config(int(i)) for i in measured.positions]
    modelled = surrogate.noise_sd(configs, held.settings.epochs) ** 2
    observed = measured.variance["val"][:, -1]
    low, high = (stats.chi2.ppf(q, measured.dof) / measured.dof * modelled for q in (0.05, 0.95))
    return NoiseCheck(
        inside=int(((observed >= low) & (observed <= high)).sum()),
        spearman=float(stats.spearmanr(observed, modelled).statistic),
        count=len(observed),
    )


def _top_quarter(predicted: np.ndarray) -> np.ndarray:
    """Positions of the highest-predicted quarter (at least MIN_HELD_OUT). Chosen by the prediction, not the
    measurement: a measured top is high partly by its seeds' luck, and would show the surrogate too low."""
    count = max(MIN_HELD_OUT, len(predicted) // 4)
    return np.argsort(-predicted, kind="stable")[:count]


def _baseline(table: Table, surrogate: Surrogate) -> Baseline | None:
    measured = subset(table, [BASELINE_ID])
    if measured.rows.empty:
        return None
    val, test = (measured.series(series)[:, -1] for series in ("val_accuracy", "test_accuracy"))
    config, epochs = [measured.config(0)], table.settings.epochs
    return Baseline(
        seeds=len(measured.rows),
        val_mean=float(val.mean()),
        val_sd=float(val.std(ddof=1)) if len(val) > 1 else float("nan"),
        test_mean=float(test.mean()),
        test_sd=float(test.std(ddof=1)) if len(test) > 1 else float("nan"),
        predicted_val=float(surrogate.mean(config, epochs, "val")[0]),
        predicted_test=float(surrogate.mean(config, epochs, "test")[0]),
        modelled_val_sd=float(surrogate.noise_sd(config, epochs)[0]),
    )


def _noise_rows(table: Table):
    several = table.rows.groupby("config_id")["seed"].transform("size") > 1
    return table.rows[several]


def _val_test_correlation(table: Table, surrogate: Surrogate) -> float | None:
    """Correlation of a seed's final validation and test deviations from its configuration's mean, each divided by
    the modelled sd (else the configurations on the edge of diverging, whose seeds move by points, decide it): near 1
    where a seed that trains well does so on both sets, as `sample` assumes."""
    rows = _noise_rows(table)
    if rows.empty:
        return None
    curves = subset(table, rows["config_id"].unique())
    groups = curves.rows["config_id"].to_numpy()
    epochs = table.settings.epochs
    configs = [curves.config(i) for i in range(len(curves.rows))]
    standardised = []
    for series, which in (("val_accuracy", "val"), ("test_accuracy", "test")):
        final = curves.series(series)[:, -1]
        deviation = final - np.array([final[groups == g].mean() for g in groups])
        standardised.append(deviation / np.maximum(surrogate.noise_sd(configs, epochs, which), 1e-9))
    return float(np.corrcoef(*standardised)[0, 1])


def _seed_agreement(table: Table) -> Agreement | None:
    rows = _noise_rows(table)
    last = f"val_accuracy_{table.settings.epochs}"
    by_seed = rows.pivot(index="config_id", columns="seed", values=last)
    if 1 not in by_seed or 2 not in by_seed or len(by_seed) < MIN_HELD_OUT:
        return None
    return agreement(by_seed[1], by_seed[2])


def markdown(fidelity: Fidelity, table: Table, command: str) -> str:
    s = table.settings
    lines = [
        "# Surrogate fidelity",
        "",
        f"Table: {len(table.rows)} fits of {table.rows['config_id'].nunique()} configurations, {s.epochs} epochs, "
        f"{s.train_images} train / {s.val_images} validation / {s.test_images} test images, batch {s.batch_size}, "
        f"Keras on {s.backend}, on {s.machine}. Made by `{command}`.",
        "",
        *_table_lines(table),
        "",
        f"Fitted on {fidelity.train_configs} configurations of the Sobol cover, judged on {fidelity.held_out_configs} "
        "others (each observation the mean of its seeds).",
        "",
        "| figure | R^2 | Spearman | Kendall tau | pairs |",
        "|---|---|---|---|---|",
        _row(f"final (epoch {s.epochs}) validation accuracy", fidelity.final_val),
        _row(f"final (epoch {s.epochs}) test accuracy", fidelity.final_test),
        _row("final validation accuracy, the surrogate's top quarter", fidelity.top_val),
        _row("validation accuracy at every epoch", fidelity.every_epoch_val),
        _row("seconds of a later epoch", fidelity.epoch_seconds),
    ]
    if fidelity.seed_agreement is not None:
        lines.append(_row("ceiling: seed 1 vs seed 2, final validation accuracy", fidelity.seed_agreement))
    lines += [
        "",
        f"In the surrogate's top quarter of the held-out configurations (where tuners choose), the measured final "
        f"validation accuracy is {fidelity.top_shortfall * 100:+.2f} points from the prediction on average: a replayed "
        "search whose winner is judged by the surrogate is flattered by about as much where this is negative.",
    ]
    b = fidelity.baseline
    if b is not None:
        lines += [
            "",
            f"The baseline model, measured with {b.seeds} seeds (a replay's baseline is these fits): final validation "
            f"accuracy {b.val_mean:.4f} (sd {b.val_sd:.4f}), test {b.test_mean:.4f} (sd {b.test_sd:.4f}); the "
            f"surrogate fitted on the Sobol configurations predicts {b.predicted_val:.4f} and {b.predicted_test:.4f} "
            f"(off by {(b.predicted_val - b.val_mean) * 100:+.2f} and {(b.predicted_test - b.test_mean) * 100:+.2f} "
            f"points), and a seed sd of its validation accuracy of {b.modelled_val_sd:.4f}.",
        ]
    lines += [
        "",
        f"Seed noise, from {fidelity.noise_configs} configurations trained with several seeds, modelled per "
        "configuration and epoch (a replay draws a seed's standardised deviations at every epoch at once, with the "
        "correlation between epochs measured on them, times the modelled sd):",
        "",
    ]
    if fidelity.noise_configs:
        lines += [
            "| epoch | validation sd, pooled | validation sd, modelled (median of held-out) | test sd, pooled | "
            "corr. of a seed's standardised deviation with the last epoch's |",
            "|---|---|---|---|---|",
        ]
        rows = zip(fidelity.pooled_sd_val, fidelity.modelled_sd_val, fidelity.pooled_sd_test, fidelity.seed_correlation)
        for e, (pooled, modelled, test, corr) in enumerate(rows, 1):
            lines.append(f"| {e} | {pooled:.4f} | {modelled:.4f} | {test:.4f} | {corr:.2f} |")
        lines += [
            "",
            "Pooled: the root of the configurations' mean seed variance, the one sd a model blind to the "
            f"configuration would use. A seed's final validation and test deviations (standardised) correlate "
            f"{fidelity.val_test_correlation:.2f} (the replay draws one deviation for both).",
        ]
        check = fidelity.noise_check
        if check is not None:
            lines += [
                "",
                f"On the {check.count} held-out configurations with several seeds, the noise model fitted without "
                f"them: {check.inside} of their measured final validation variances lie inside the central 90% it "
                f"gives a variance of their seeds (about {0.9 * check.count:.0f} if it is calibrated); Spearman "
                f"{check.spearman:.2f} between measured and modelled.",
            ]
    else:
        lines.append("none: replays of this table add no seed noise (build with --noise-configs).")
    return "\n".join(lines) + "\n"


def compare_models(table: Table, holdout: float) -> list[tuple[str, list[Fidelity]]]:
    """Every candidate accuracy model (surrogate.MODELS) judged on the same COMPARE_SPLITS held-out splits (seeds
    0, 1, ...)."""
    return [(name, [evaluate(table, holdout, seed, name) for seed in range(COMPARE_SPLITS)]) for name in MODELS]


R2_MARGIN = 0.01  # final-validation R^2 this close to the best counts as a tie, broken by the top quarter's bias


def choose_model(compared: list[tuple[str, list[Fidelity]]]) -> str:
    """The rule that picks the replay's accuracy model, fixed before the whole table's comparison was seen: the
    highest mean held-out final-validation R^2; among the models within R2_MARGIN of it, the one whose mean
    top-quarter measured-minus-predicted is smallest in size (whose winners a replay flatters least)."""
    r2 = {name: float(np.mean([r.final_val.r2 for r in results])) for name, results in compared}
    shortfall = {name: abs(float(np.mean([r.top_shortfall for r in results]))) for name, results in compared}
    close = [name for name in r2 if r2[name] >= max(r2.values()) - R2_MARGIN]
    return min(close, key=shortfall.get)


# What models.md shows of each model: (column, figure of one split's Fidelity, format); the mean over the splits.
COMPARED = (
    ("final validation R^2", lambda r: r.final_val.r2, "{:.3f}"),
    ("Spearman", lambda r: r.final_val.spearman, "{:.3f}"),
    ("Kendall tau", lambda r: r.final_val.kendall, "{:.3f}"),
    ("final test R^2", lambda r: r.final_test.r2, "{:.3f}"),
    ("top quarter: Spearman", lambda r: r.top_val.spearman, "{:.3f}"),
    ("top quarter: measured − predicted (pts)", lambda r: r.top_shortfall * 100, "{:+.2f}"),
    ("every epoch R^2", lambda r: r.every_epoch_val.r2, "{:.3f}"),
)


def models_markdown(compared: list[tuple[str, list[Fidelity]]], table: Table, command: str) -> str:
    lines = [
        "# Accuracy models compared",
        "",
        f"Table: {len(table.rows)} fits of {table.rows['config_id'].nunique()} configurations. Made by `{command}`. "
        f"Each model is fitted on the same {len(compared[0][1])} splits of the Sobol configurations and judged on "
        "the held-out ones (each figure the mean over the splits). Marked: the rule's choice (the highest final "
        f"validation R^2; within {R2_MARGIN} of it, the smallest top-quarter measured − predicted in size), which "
        "`surrogate.MODEL` must name (a test holds them together).",
        "",
        "| model | " + " | ".join(column for column, _, _ in COMPARED) + " |",
        "|---" * (len(COMPARED) + 1) + "|",
    ]
    chosen = choose_model(compared)
    for name, results in compared:
        cells = [fmt.format(float(np.mean([figure(r) for r in results]))) for _, figure, fmt in COMPARED]
        lines.append(f"| {name}{' (chosen)' if name == chosen else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(directory: Path, table: Table, holdout: float, command: str) -> Path:
    """Compare the candidate models and write models.md into the table's folder."""
    path = Path(directory) / MODELS_FILE
    atomic.write_text(path, models_markdown(compare_models(table, holdout), table, command))
    return path


def _table_lines(table: Table) -> list[str]:
    """What the table holds and cost, over all its fits: the build figures docs/replay.md quotes."""
    rows, epochs = table.rows, table.settings.epochs
    fit_seconds = rows["build_seconds"] + table.series("epoch_seconds").sum(axis=1) + rows["score_seconds"]
    final = table.series("val_accuracy")[:, -1]
    lines = [
        f"Built by {len(table.sessions)} `fmbench table build` sessions, the last row finished "
        f"{rows['finished_at'].max()}: {fit_seconds.sum() / 3600:.2f} h of fits (each fit's build, epochs and "
        f"scoring), the median fit {fit_seconds.median():.1f} s. Final (epoch {epochs}) validation accuracy: median "
        f"{np.median(final):.4f}, max {final.max():.4f}; {np.mean(final < DIVERGED):.1%} of fits below {DIVERGED} "
        "(diverged).",
    ]
    measured = seed_variances(table)
    sobol = measured.config_ids != BASELINE_ID
    if sobol.any():
        variance = measured.variance["val"][sobol, -1]
        sd = np.sqrt(variance) * 100
        lines[0] += (
            f" Its seed sd, over the {sobol.sum()} Sobol configurations trained with several seeds: "
            f"{sd.min():.2f} to {sd.max():.1f} points, median {np.median(sd):.2f}, pooled "
            f"{np.sqrt(variance.mean()) * 100:.2f}."
        )
    return lines


def _row(label: str, a: Agreement) -> str:
    return f"| {label} | {a.r2:.3f} | {a.spearman:.3f} | {a.kendall:.3f} | {a.count} |"


def write(directory: Path, table: Table, holdout: float, seed: int, command: str) -> tuple[Fidelity, Path]:
    """Evaluate and write fidelity.md into the table's folder."""
    fidelity = evaluate(table, holdout, seed)
    path = Path(directory) / FIDELITY_FILE
    atomic.write_text(path, markdown(fidelity, table, command))
    return fidelity, path
