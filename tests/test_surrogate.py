"""fmbench.replay's surrogate and its fidelity, on synthetic tables whose truth is known (tests/synthetic_tables.py):
the agreement figures, the seed noise and its sampling, the seconds model, and the markdown written."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import synthetic_tables

from fmbench.models import mlp
from fmbench.replay import fidelity
from fmbench.replay.surrogate import Surrogate, pooled_seed_sd, seed_variances
from fmbench.replay.table import TableError


def test_agreement_figures_match_their_definitions():
    perfect = fidelity.agreement([0.1, 0.4, 0.2, 0.9], [0.1, 0.4, 0.2, 0.9])
    assert (perfect.r2, perfect.spearman, perfect.kendall, perfect.count) == (1.0, 1.0, 1.0, 4)
    reversed_ = fidelity.agreement([1, 2, 3, 4], [4, 3, 2, 1])
    assert reversed_.spearman == pytest.approx(-1) and reversed_.kendall == pytest.approx(-1)
    # R^2 = 1 - SS_res / SS_tot = 1 - 1 / 5; ranks all agree.
    off_by_one = fidelity.agreement([1, 2, 3, 4], [1, 2, 3, 5])
    assert off_by_one.r2 == pytest.approx(0.8) and off_by_one.spearman == pytest.approx(1)
    one_swap = fidelity.agreement([1, 2, 3, 4], [2, 1, 3, 4])
    assert one_swap.kendall == pytest.approx(4 / 6) and one_swap.spearman == pytest.approx(0.8)


@pytest.fixture(scope="module")
def learnable():
    return synthetic_tables.make(n_configs=150, noise_sd=0.003)


def test_a_learnable_table_is_predicted_well_on_held_out_configurations(learnable):
    result = fidelity.evaluate(learnable, holdout=0.2, seed=0)
    assert (result.train_configs, result.held_out_configs) == (120, 30)
    assert result.final_val.r2 > 0.9 and result.final_val.spearman > 0.9 and result.final_val.kendall > 0.75
    assert result.final_test.r2 > 0.9  # test accuracy is validation's minus 0.01: as learnable
    assert result.every_epoch_val.r2 > 0.95  # the curve's rise with the epochs is learnt too
    assert result.top_val.count == 7 and abs(result.top_shortfall) < 0.01  # 30 // 4 highest predicted; no bias
    assert result.epoch_seconds.spearman > 0.9  # seconds grow with the weight count


def test_a_table_without_signal_is_not_predicted():
    noise_only = synthetic_tables.make(n_configs=150, noise_configs=0, noise_sd=0.05, quality=lambda values: 0.8)
    result = fidelity.evaluate(noise_only, holdout=0.3, seed=1)
    assert result.final_val.r2 < 0.1 and abs(result.final_val.spearman) < 0.4
    assert result.top_shortfall < 0  # the highest predictions are the noise it fitted: flattering
    assert result.noise_configs == 0 and result.seed_agreement is None


def test_seed_noise_is_measured_from_the_noise_configurations():
    noisy = synthetic_tables.make(n_configs=80, noise_configs=60, noise_sd=0.02)
    measured = seed_variances(noisy)
    assert len(measured.config_ids) == 60 and (measured.dof == 2).all()
    pooled = pooled_seed_sd(measured)
    assert pooled["val"] == pytest.approx(np.full(4, 0.02), rel=0.2)
    assert pooled["test"] == pytest.approx(pooled["val"])  # the same shift on both sets
    correlated = fidelity.evaluate(noisy, seed=0)
    assert min(correlated.seed_correlation) > 0.99  # one draw per curve: the deviations of every epoch go together
    assert correlated.val_test_correlation > 0.99  # test is validation's minus 0.01: the same deviation
    independent = synthetic_tables.make(n_configs=80, noise_configs=60, noise_sd=0.02, shared_noise=False)
    independent_result = fidelity.evaluate(independent, seed=0)
    assert abs(independent_result.seed_correlation[0]) < 0.3
    text = fidelity.markdown(independent_result, independent, "c")
    assert f"test deviations (standardised) correlate {independent_result.val_test_correlation:.2f}" in text


def test_the_noise_model_follows_how_well_a_configuration_trains_where_one_pooled_sd_would_not():
    steady_when_good = lambda values: 0.002 if synthetic_tables.learnable(values) > 0.7 else 0.03  # noqa: E731
    table = synthetic_tables.make(n_configs=160, noise_configs=150, noise_sd=steady_when_good)
    surrogate = Surrogate.fit(table)
    good = {"num_layers": 1, "units_0": 256, "dropout_0": 0.1, "learning_rate": 8e-3}  # quality 0.81
    poor = {"num_layers": 4, **{f"{k}_{i}": v for i in range(4) for k, v in (("units", 256), ("dropout", 0.1))}}
    poor["learning_rate"] = 1.5e-4  # quality 0.50
    assert surrogate.noise_sd([good], 4)[0] < 0.008 < 0.015 < surrogate.noise_sd([poor], 4)[0]
    assert 0.008 < pooled_seed_sd(seed_variances(table))["val"][-1] < 0.03  # between them: right for neither
    check = fidelity.evaluate(table, holdout=0.3, seed=0).noise_check
    assert check.count >= 30 and check.inside >= 0.75 * check.count and check.spearman > 0.5


def test_sample_draws_a_seeds_whole_curve_with_the_measured_correlation_between_epochs():
    shared = synthetic_tables.make(n_configs=80, noise_configs=60, noise_sd=0.02)
    surrogate = Surrogate.fit(shared)
    config = shared.config(5)
    mean = surrogate.mean([config], 3)[0]
    draws = np.array([surrogate.sample(config, 3, np.random.default_rng(seed)) for seed in range(400)])
    assert draws[:, 0].mean() == pytest.approx(mean, abs=0.002)
    assert draws[:, 0].std() == pytest.approx(surrogate.noise_sd([config], 3)[0], rel=0.15)
    assert surrogate.noise_sd([config], 3)[0] == pytest.approx(0.02, rel=0.3)  # the table's noise
    assert np.allclose(draws[:, 0] - draws[:, 1], draws[0, 0] - draws[0, 1], atol=1e-3)  # one deviation for both sets

    def deviations(surrogate, epoch):
        return np.array([surrogate.sample(config, epoch, np.random.default_rng(s))[0] for s in range(300)])

    # One shift for a whole curve in the table: epoch 1's deviation is epoch 4's.
    assert np.corrcoef(deviations(surrogate, 1), deviations(surrogate, 4))[0, 1] > 0.95
    independent = synthetic_tables.make(n_configs=80, noise_configs=60, noise_sd=0.02, shared_noise=False)
    apart = Surrogate.fit(independent)
    assert abs(np.corrcoef(deviations(apart, 1), deviations(apart, 4))[0, 1]) < 0.25  # a fresh one per epoch
    again = [apart.sample(config, 2, np.random.default_rng(7)) for _ in range(2)]
    assert again[0] == again[1]  # a seed's generator gives one curve


def test_the_seconds_model_follows_the_weight_count(learnable):
    surrogate = Surrogate.fit(learnable)
    small = {"num_layers": 1, "units_0": 32, "dropout_0": 0.0, "learning_rate": 1e-3}
    large = {"num_layers": 3, **{f"units_{i}": 512 for i in range(3)}, **{f"dropout_{i}": 0.0 for i in range(3)}}
    large["learning_rate"] = 1e-3
    assert surrogate.fit_seconds(large).epoch > 2 * surrogate.fit_seconds(small).epoch
    fixed = surrogate.fit_seconds(small)
    assert (fixed.build, fixed.compile, fixed.score) == pytest.approx(
        (synthetic_tables.BUILD, synthetic_tables.COMPILE, synthetic_tables.SCORE)
    )


def test_fidelity_is_written_with_the_figures_it_computed(learnable, tmp_path):
    result, path = fidelity.write(tmp_path, learnable, 0.2, 0, "fmbench table fit T")
    text = path.read_text()
    assert path.name == "fidelity.md" and "`fmbench table fit T`" in text
    assert (
        f"| {result.final_val.r2:.3f} | {result.final_val.spearman:.3f} | {result.final_val.kendall:.3f} | 30 |" in text
    )
    assert f"| 4 | {result.pooled_sd_val[3]:.4f} | {result.modelled_sd_val[3]:.4f} |" in text
    assert f"the surrogate's top quarter | {result.top_val.r2:.3f} |" in text
    assert f"is {result.top_shortfall * 100:+.2f} points from the prediction" in text


def test_fidelity_md_states_what_the_table_cost_and_its_seed_noise_over_the_sobol_configurations():
    measured = synthetic_tables.make(n_configs=60, noise_configs=40, noise_sd=0.02, baseline_seeds=5)
    text = fidelity.markdown(fidelity.evaluate(measured, seed=0), measured, "c")
    first_epoch = synthetic_tables.COMPILE
    seconds = [
        synthetic_tables.BUILD
        + synthetic_tables.SCORE
        + first_epoch
        + measured.settings.epochs * synthetic_tables.epoch_seconds(measured.config(i))
        for i in range(len(measured.rows))
    ]
    assert f"{sum(seconds) / 3600:.2f} h of fits" in text and f"the median fit {np.median(seconds):.1f} s" in text
    assert "over the 40 Sobol configurations trained with several seeds" in text  # not the baseline's seeds
    pooled = float(text.split("points, median ")[1].split("pooled ")[1].split(".\n")[0].rstrip("."))
    assert 1.6 < pooled < 2.4  # the truth is 2 points; 80 degrees of freedom


def test_the_baseline_is_judged_apart_from_the_held_out_sobol_configurations():
    anchored = synthetic_tables.make(n_configs=150, noise_sd=0.003, baseline_seeds=12)
    result = fidelity.evaluate(anchored, holdout=0.2, seed=0)
    assert (result.train_configs, result.held_out_configs) == (120, 30)  # the 150 Sobol configurations only
    b = result.baseline
    truth = synthetic_tables.learnable(mlp.BASELINE_HPS) * (1 - 0.5**4)
    assert b.seeds == 12 and b.val_mean == pytest.approx(truth, abs=0.003) and b.val_sd == pytest.approx(0.003, rel=0.6)
    assert b.test_mean == pytest.approx(b.val_mean - 0.01) and b.predicted_val == pytest.approx(truth, abs=0.02)
    text = fidelity.markdown(result, anchored, "c")
    assert f"12 seeds (a replay's baseline is these fits): final validation accuracy {b.val_mean:.4f}" in text
    assert f"predicts {b.predicted_val:.4f}" in text
    assert fidelity.evaluate(synthetic_tables.make(n_configs=30), seed=0).baseline is None


def test_a_table_too_small_to_judge_is_refused():
    with pytest.raises(TableError, match="--configs"):
        fidelity.evaluate(synthetic_tables.make(n_configs=8), holdout=0.2)


def test_table_fit_writes_fidelity_md_into_the_table(learnable, tmp_path, monkeypatch, capsys):
    from fmbench import backend, cli
    from fmbench.replay import table

    monkeypatch.setattr(backend, "select", lambda *args: None)  # this process's Keras backend stays as it is
    table.create_or_check(tmp_path, learnable.settings)
    table.append_rows(tmp_path, learnable.rows.to_dict("records"))
    args = ["table", "fit", str(tmp_path), "--holdout", "0.2", "--seed", "0"]
    monkeypatch.setattr("sys.argv", ["fmbench", *args])  # the command the file names
    assert cli.main(args) == 0
    written = (tmp_path / "fidelity.md").read_text()
    command = f"fmbench table fit {tmp_path} --holdout 0.2 --seed 0"
    assert written == fidelity.markdown(fidelity.evaluate(learnable, 0.2, 0), table.load(tmp_path), command)
    assert "judged on 30 others" in written and f"written to {tmp_path / 'fidelity.md'}" in capsys.readouterr().out


def test_table_fit_compare_judges_every_candidate_model_on_the_same_splits(tmp_path, monkeypatch, capsys):
    from fmbench import backend, cli
    from fmbench.replay import surrogate, table

    small = synthetic_tables.make(n_configs=20, noise_configs=10)
    monkeypatch.setattr(backend, "select", lambda *args: None)  # this process's Keras backend stays as it is
    monkeypatch.setattr(fidelity, "COMPARE_SPLITS", 2)
    synthetic_tables.save(tmp_path, small)
    assert cli.main(["table", "fit", str(tmp_path), "--compare"]) == 0
    written = (tmp_path / fidelity.MODELS_FILE).read_text()
    compared = fidelity.compare_models(table.load(tmp_path), 0.2)
    choice = fidelity.choose_model(compared)
    rows = [line for line in written.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        f"{name} (chosen)" if name == choice else name for name in surrogate.MODELS
    ]
    chosen = dict(compared)[choice]
    assert len(chosen) == 2
    assert f"(chosen) | {np.mean([r.final_val.r2 for r in chosen]):.3f} |" in written
    assert not (tmp_path / fidelity.FIDELITY_FILE).exists()  # the comparison only


def _judged(r2: float, shortfall: float) -> SimpleNamespace:
    """A stand-in for one split's Fidelity: only what choose_model reads."""
    agreement = fidelity.Agreement(r2=r2, spearman=0.0, kendall=0.0, count=10)
    return SimpleNamespace(final_val=agreement, top_shortfall=shortfall)


def test_the_model_rule_takes_the_best_r2_and_breaks_near_ties_by_the_top_quarters_bias():
    clear = [("a", [_judged(0.50, 0.001)]), ("b", [_judged(0.60, 0.020), _judged(0.62, 0.020)])]
    assert fidelity.choose_model(clear) == "b"  # 0.61 against 0.50: the bias does not matter
    near = [("a", [_judged(0.600, -0.004)]), ("b", [_judged(0.605, 0.010)]), ("c", [_judged(0.50, 0.0)])]
    assert fidelity.choose_model(near) == "a"  # within R2_MARGIN of the best: the smaller bias in size wins
