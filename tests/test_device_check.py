"""scripts/device_check.sh: on a machine (or with CUDA_VISIBLE_DEVICES) showing no GPU, one line and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_device_check_without_a_visible_gpu_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "gpu-smoke"
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PY": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "device_check.sh"), str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("device-check: no GPU visible"), proc.stderr
    assert "CUDA_VISIBLE_DEVICES=" in lines[0] and "NVIDIA GPU" in lines[0]
    assert not out.exists(), "nothing is written before the GPU is found"
