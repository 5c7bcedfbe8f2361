"""fmbench.replay's table: the Sobol cover of the MLP space, shards, the storage (whole rows only, after a kill too),
resuming a build, the CLI's refusals; and one marked end-to-end build on the shipped subset."""

from __future__ import annotations

import dataclasses
import gzip
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fmbench import cli
from fmbench.replay import configs, table
from fmbench.replay.configs import Plan
from fmbench.space import MLP
from fmbench.spec import SpecError

REPO = Path(__file__).resolve().parents[1]


def test_the_sobol_draw_covers_every_declared_value_dropout_half_included():
    drawn = configs.draw(512)
    layers = Counter(values["num_layers"] for values in drawn)
    assert sorted(layers) == [1, 2, 3, 4, 5] and min(layers.values()) >= 512 / 5 * 0.9
    dropout = Counter(values["dropout_0"] for values in drawn)
    assert sorted(dropout) == list(MLP["dropout_0"].grid) and 0.5 in dropout
    assert min(dropout.values()) >= 512 / 6 * 0.9  # an even cover: each grid value about 1/6 of the draws
    units = Counter(values["units_0"] for values in drawn)
    assert sorted(units) == list(MLP["units_0"].grid)
    rates = np.array([values["learning_rate"] for values in drawn])
    assert rates.min() >= 1e-4 and rates.max() <= 1e-2
    assert abs(np.mean(rates < 1e-3) - 0.5) < 0.03  # log scale: half the draws below the range's geometric middle
    deep = [values for values in drawn if values["num_layers"] == 5]
    assert any(values["dropout_4"] == 0.5 for values in deep)  # the last layer's knobs are drawn too
    assert all(MLP.active(values) == values for values in drawn)  # no inactive knob in a configuration


def test_a_larger_draw_extends_a_smaller_one():
    assert configs.draw(40)[:16] == configs.draw(16)
    assert configs.draw(16, seed=configs.SOBOL_SEED + 1) != configs.draw(16)


def test_shards_partition_the_configurations_and_their_seeds():
    whole = Plan(configs=23, noise_configs=5, noise_seeds=3)
    shards = [Plan(configs=23, noise_configs=5, noise_seeds=3, shard=(k, 4)).pairs() for k in range(1, 5)]
    assert sorted(pair for shard in shards for pair in shard) == sorted(whole.pairs())
    assert sum(len(shard) for shard in shards) == len(set(whole.pairs())) == 23 + 5 * 2
    assert [config for config, _ in shards[1]][:3] == [1, 1, 1]  # config 1 is a noise configuration: 3 seeds
    assert {config for config, _ in shards[1]} == {1, 5, 9, 13, 17, 21}
    seeds = Counter(config for config, _ in whole.pairs())
    assert seeds[4] == 3 and seeds[5] == 1  # the first 5 configurations are the noise configurations


def test_the_baseline_is_measured_first_with_its_seeds_by_shard_1_only():
    plan = dict(configs=6, noise_configs=2, noise_seeds=3, baseline_seeds=4)
    pairs = Plan(**plan).pairs()
    assert pairs[:4] == [(configs.BASELINE_ID, seed) for seed in (1, 2, 3, 4)]
    assert Counter(config for config, _ in pairs)[configs.BASELINE_ID] == 4 and len(pairs) == 4 + 6 + 2 * 2
    shards = [Plan(**plan, shard=(k, 3)).pairs() for k in (1, 2, 3)]
    assert sorted(pair for shard in shards for pair in shard) == sorted(pairs)
    assert all(config != configs.BASELINE_ID for shard in shards[1:] for config, _ in shard)


@pytest.mark.parametrize(
    "text, words", [("3/2", ["out of range", "K <= N"]), ("0/2", ["out of range"]), ("half", ["not K/N"])]
)
def test_a_bad_shard_is_refused_naming_the_fix(text, words):
    with pytest.raises(SpecError) as error:
        configs.parse_shard(text)
    assert all(word in str(error.value) for word in words) and "--shard 2/4" in str(error.value)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"configs": 0}, ["--configs", ">= 1"]),
        ({"noise_configs": 20}, ["--noise-configs", "0..--configs"]),
        ({"noise_seeds": 1}, ["--noise-seeds", ">= 2"]),
    ],
)
def test_a_bad_plan_is_refused(options, words):
    with pytest.raises(SpecError) as error:
        Plan(**({"configs": 10, "noise_configs": 2, "noise_seeds": 3} | options))
    assert all(word in str(error.value) for word in words)


def _settings(epochs: int = 2) -> table.Settings:
    return table.Settings(
        epochs=epochs,
        batch_size=128,
        train_images=10,
        val_images=10,
        test_images=10,
        backend="jax",
        machine="m",
        labels={},
        sobol_seed=configs.SOBOL_SEED,
    )


def _row(config_id: int, seed: int = 1, epochs: int = 2) -> dict:
    values = configs.draw(config_id + 1)[config_id]
    row = {"config_id": config_id, "seed": seed, **values, "build_seconds": 0.1, "compile_seconds": 1.0}
    row |= {"score_seconds": 0.2, "commit": "abc", "finished_at": "t"}
    for e in range(1, epochs + 1):
        row |= {f"val_accuracy_{e}": 0.5 + e / 100, f"test_accuracy_{e}": 0.4, f"epoch_seconds_{e}": 1.0 / 3}
    return row


def test_rows_read_back_exactly(tmp_path):
    table.create_or_check(tmp_path, _settings())
    assert table.append_rows(tmp_path, [_row(0), _row(3, seed=2)]) == 2
    loaded = table.load(tmp_path)
    assert loaded.pairs() == {(0, 1), (3, 2)}
    assert loaded.config(1) == configs.draw(4)[3]  # the learning rate's float survives the CSV exactly
    assert loaded.series("epoch_seconds")[0, 1] == 1.0 / 3
    assert math.isnan(loaded.rows["units_4"][0]) == (configs.draw(1)[0]["num_layers"] < 5)


def test_a_pair_already_stored_is_not_written_twice(tmp_path):
    table.create_or_check(tmp_path, _settings())
    table.append_rows(tmp_path, [_row(0)])
    assert table.append_rows(tmp_path, [_row(0), _row(1)]) == 1
    assert len(table.load(tmp_path).rows) == 2


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_killed_write_leaves_no_partial_row_and_the_next_append_trims_it(tmp_path, damage):
    table.create_or_check(tmp_path, _settings())
    table.append_rows(tmp_path, [_row(0), _row(1)])
    path = tmp_path / table.TABLE_FILE
    whole = path.read_bytes()
    member = gzip.compress(b"2,1,3,64,0.1,killed mid-row\n", mtime=0)
    if damage == "cut":  # the process died while writing the block
        tail = member[: len(member) - 5]
    else:  # the block is all there but its bytes are not what was written (a torn page)
        tail = member[:-8] + bytes([member[-8] ^ 0xFF]) + member[-7:]
    path.write_bytes(whole + tail)
    assert table.load(tmp_path).pairs() == {(0, 1), (1, 1)}
    table.append_rows(tmp_path, [_row(2)])
    text = gzip.decompress(path.read_bytes()).decode()  # a plain gzip reader sees a valid file again
    assert "killed" not in text and text.count("\n") == 4
    assert table.load(tmp_path).pairs() == {(0, 1), (1, 1), (2, 1)}


def test_a_resume_with_other_settings_is_refused_naming_them(tmp_path):
    table.create_or_check(tmp_path, _settings(epochs=2))
    table.create_or_check(tmp_path, _settings(epochs=2))  # the same settings: a resume
    with pytest.raises(table.TableError) as error:
        table.create_or_check(tmp_path, _settings(epochs=3))
    assert "epochs 2 here, 3 now" in str(error.value) and "new folder" in str(error.value)


def test_a_folder_without_a_table_is_refused(tmp_path):
    with pytest.raises(table.TableError, match="not a table"):
        table.load(tmp_path)


def _fake_measure(calls: list, kill_at: int | None = None):
    def measure(trainer, values, seed, split, plan):
        if len(calls) == kill_at:
            raise KeyboardInterrupt
        calls.append(seed)
        return {k: v for k, v in _row(0, epochs=plan.epochs).items() if "seconds" in k or "accuracy" in k}

    return measure


def test_a_build_resumes_where_it_was_killed_and_skips_finished_pairs(tmp_path, subset_split, monkeypatch):
    from fmbench.replay import build

    monkeypatch.setattr(build, "warm_up", lambda *args: None)
    plan = Plan(configs=4, noise_configs=1, noise_seeds=3, epochs=2)  # 6 fits: config 0 thrice, 1..3 once
    calls: list = []
    monkeypatch.setattr(build, "measure", _fake_measure(calls, kill_at=4))
    with pytest.raises(KeyboardInterrupt):
        build.build(tmp_path, plan, subset_split, "test", progress=lambda line: None)
    assert table.load(tmp_path).pairs() == {(0, 1), (0, 2), (0, 3), (1, 1)}
    calls.clear()
    monkeypatch.setattr(build, "measure", _fake_measure(calls))
    lines: list[str] = []
    assert build.build(tmp_path, plan, subset_split, "test", progress=lines.append) == 2
    assert "4 already stored, 2 to measure" in lines[0] and "ETA" in lines[-1]
    assert table.load(tmp_path).pairs() == set(plan.pairs())
    assert build.build(tmp_path, plan, subset_split, "test", progress=lambda line: None) == 0
    assert len(table.load(tmp_path).sessions) == 3


def _table_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["table", "build", str(tmp_path / "t"), "--data-dir", str(tmp_path / "none"), *extra]


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--shard", "5/4"), ["--shard", "out of range"]),
        (("--configs", "10", "--noise-configs", "11"), ["--noise-configs"]),
        (("--baseline-seeds", "-1"), ["--baseline-seeds", ">= 0"]),
        (("--profile", "huge"), ["'huge'", "standard"]),
        ((), ["data directory", "--data-dir"]),
    ],
)
def test_bad_table_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, extra, words):
    from fmbench import backend

    monkeypatch.setattr(backend, "select", lambda *args: None)  # this process's Keras backend stays as it is
    assert cli.main(_table_args(tmp_path, *extra)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmbench table build: error: ")
    assert all(word in lines[0] for word in words), lines[0]
    assert not (tmp_path / "t").exists()


def test_table_input_is_checked_before_keras_loads(tmp_path):
    block = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'jax'):\n"
        "            raise ImportError(f'TEST: {name} imported before the input was checked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from fmbench import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    args = _table_args(tmp_path, "--shard", "2/1")
    proc = subprocess.run([sys.executable, "-c", block, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--shard" in proc.stderr, proc.stderr


@pytest.mark.e2e
def test_a_tiny_build_measures_every_epoch_and_a_rerun_measures_nothing(tmp_path, subset_split):
    from fmbench.models import mlp
    from fmbench.replay import build

    plan = Plan(configs=2, noise_configs=1, noise_seeds=2, epochs=2, baseline_seeds=1)
    lines: list[str] = []
    assert build.build(tmp_path, plan, subset_split, "test", progress=lines.append) == 4
    loaded = table.load(tmp_path)
    assert loaded.pairs() == {(configs.BASELINE_ID, 1), (0, 1), (0, 2), (1, 1)}
    assert loaded.config(0) == mlp.BASELINE_HPS and "baseline seed 1" in lines[1]
    loaded = dataclasses.replace(loaded, rows=loaded.rows.iloc[1:].reset_index(drop=True))  # the Sobol fits
    for series in ("val_accuracy", "test_accuracy"):
        values = loaded.series(series)
        assert values.shape == (3, 2) and ((values >= 0) & (values <= 1)).all()
        assert np.allclose(values * 100, np.round(values * 100))  # shares of the 100 held-out images
        assert values[:, 1].max() > 0.3  # two epochs on 300 images learn something: chance is 0.1
    assert (loaded.series("epoch_seconds") > 0).all() and (loaded.rows["compile_seconds"] >= 0).all()
    assert (loaded.rows["build_seconds"] > 0).all() and (loaded.rows["score_seconds"] > 0).all()
    assert loaded.settings.labels["val"] == table.label_fingerprint(subset_split.y_val)
    val, test = loaded.series("val_accuracy"), loaded.series("test_accuracy")
    assert not (np.array_equal(val[0], val[1]) and np.array_equal(test[0], test[1]))  # config 0's seeds 1 and 2
    assert len(lines) == 5 and "ETA" in lines[-1]
    assert build.build(tmp_path, plan, subset_split, "test", progress=lines.append) == 0
