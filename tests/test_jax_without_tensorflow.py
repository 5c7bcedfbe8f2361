"""On JAX, fmbench runs a search, its retrain and the report with TensorFlow's import blocked, as on the GPU machines
at hand, which have no TensorFlow: every row says jax, and no TensorFlow module was ever loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fmbench import results

pytestmark = pytest.mark.e2e

# A fresh interpreter, because Keras cannot switch backends in the test process. `sys.modules["tensorflow"] = None`
# makes every `import tensorflow` (fmbench's, Keras's, keras-tuner's, tensorboard's) raise ImportError.
SCRIPT = """
import sys
sys.modules["tensorflow"] = None
from fmbench import cli
out, data = sys.argv[1], sys.argv[2]
common = ["--seed", "1", "--profile", "smoke", "--data-dir", data, "--out", out, "--backend", "jax"]
for runner, budget in (("random", ["--max-trials", "2"]), ("tpe", ["--max-trials", "2"]), ("baseline", [])):
    assert cli.main(["run", "--tuner", runner, *budget, *common]) == 0, runner
assert cli.main(["report", out]) == 0
loaded = sorted(name for name, module in sys.modules.items() if name.startswith("tensorflow") and module is not None)
print("tensorflow modules:", loaded)
"""


def test_a_search_retrain_and_report_run_on_jax_with_tensorflow_blocked(tmp_path: Path, subset_dir: Path) -> None:
    out = tmp_path / "jax"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no KERAS_BACKEND from the caller's environment
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(subset_dir)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "tensorflow modules: []" in proc.stdout
    runs = results.read_runs(out)
    assert sorted(runs.tuner) == ["baseline", "random", "tpe"]
    assert set(runs.keras_backend) == {"jax"} and runs.test_accuracy.between(0.1, 1.0).all()
    assert (runs.jax_version != "not installed").all()
    assert (out / "report.md").read_text().count("jax") >= 1
