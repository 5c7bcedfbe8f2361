"""scripts/device_check.sh and scripts/prepare_device_bundle.py, without a GPU, a network or training.

On a machine (or with CUDA_VISIBLE_DEVICES) showing no GPU the check stops with one line and exit 2; a stand-in
Python that reports a GPU reaches the bundle checks; the bundle script refuses a folder over its cap and never
empties a folder that is no bundle; what it bundles is what fmbench's requirements reach past the machine's own
packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scripts_module

REPO = Path(__file__).resolve().parents[1]
DEVICE_CHECK = REPO / "scripts" / "device_check.sh"
PREPARE = REPO / "scripts" / "prepare_device_bundle.py"

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


def _device_check(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEVICE_CHECK), str(out)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(proc: subprocess.CompletedProcess, start: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr
    return lines[0]


@needs_bash
def test_device_check_without_a_visible_gpu_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "gpu-smoke"
    env = {
        "CUDA_VISIBLE_DEVICES": "",
        "PY": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    line = _one_line(_device_check(out, env), "device-check: no GPU visible")
    assert "CUDA_VISIBLE_DEVICES=" in line and "NVIDIA GPU" in line
    assert not out.exists(), "nothing is written before the GPU is found"


def _fake_python(tmp_path: Path, jax_gpus: int = 1, version: str = "3.12") -> Path:
    """A stand-in for the machine's Python that answers the script's GPU and version questions."""
    fake = tmp_path / "python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'case "$*" in\n'
        '  *telemetry*) echo "NVIDIA H100 80GB HBM3" ;;\n'
        f"  *jax.devices*) echo {jax_gpus} ;;\n"
        f"  *version_info*) echo {version} ;;\n"
        "  *) exit 99 ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    return fake


@needs_bash
def test_device_check_names_a_gpu_that_jax_cannot_see(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _device_check(out, {"PY": str(_fake_python(tmp_path, jax_gpus=0))})
    line = _one_line(proc, "device-check: NVML sees NVIDIA H100 80GB HBM3 but JAX sees no GPU")
    assert "CUDA build" in line
    assert not out.exists()


@needs_bash
def test_device_check_without_the_bundle_says_how_to_make_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _device_check(out, {"PY": str(_fake_python(tmp_path)), "BUNDLE": str(tmp_path / "no-bundle")})
    line = _one_line(proc, "device-check: no bundle in ")
    assert "prepare_device_bundle.py" in line
    assert not out.exists()


@needs_bash
def test_device_check_refuses_a_bundle_for_another_python(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "fashion-mnist").mkdir()
    (bundle / "MANIFEST.txt").write_text("fmbench device bundle\npython: 3.11\n")
    out = tmp_path / "out"
    proc = _device_check(out, {"PY": str(_fake_python(tmp_path)), "BUNDLE": str(bundle)})
    line = _one_line(proc, f"device-check: the bundle in {bundle} is for CPython 3.11")
    assert line.endswith("prepare it with --python-version 3.12")
    assert not out.exists()


@needs_bash
def test_the_shell_script_parses() -> None:
    subprocess.run(["bash", "-n", str(DEVICE_CHECK)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_the_shell_script_passes_shellcheck() -> None:
    proc = subprocess.run(["shellcheck", str(DEVICE_CHECK)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_device_check_installs_nothing_from_an_index() -> None:
    """The GPU machines have no index: the target must not depend on `setup` (which pip-installs .venv)."""
    proc = subprocess.run(["make", "-n", "device-check"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "pip" not in proc.stdout and "scripts/device_check.sh" in proc.stdout


# --- prepare_device_bundle.py --------------------------------------------------------------------------------------


def _prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREPARE), *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_the_bundle_script_refuses_a_folder_over_its_cap(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    with open(bundle / "big.whl", "wb") as f:
        f.truncate(3 << 20)  # sparse: 3 MiB that take no disk
    proc = _prepare("--check", str(bundle), "--max-mib", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == f"prepare-device-bundle: {bundle} is 3.0 MiB, over the 2 MiB cap\n"
    proc = _prepare("--check", str(bundle), "--max-mib", "4")
    assert proc.returncode == 0, proc.stderr
    assert "3.0 MiB (cap 4 MiB)" in proc.stdout


def test_the_bundle_script_never_empties_a_folder_that_is_no_bundle(tmp_path: Path, subset_dir: Path) -> None:
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    proc = _prepare("--out", str(keep), "--data-dir", str(subset_dir))
    assert proc.returncode == 1 and "is no bundle (no MANIFEST.txt): not emptying it" in proc.stderr, proc.stderr
    assert (keep / "notes.txt").read_text() == "mine"


def test_the_bundle_script_wants_the_four_data_files(tmp_path: Path) -> None:
    proc = _prepare("--out", str(tmp_path / "bundle"), "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "lacks train-images-idx3-ubyte.gz" in proc.stderr, proc.stderr
    assert not (tmp_path / "bundle").exists()


@pytest.fixture(scope="module")
def prepare():
    return scripts_module.load("prepare_device_bundle")


def _item(name: str, version: str, *requires: str) -> dict:
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


def test_the_bundle_holds_what_the_requirements_reach_past_the_machines_packages(prepare) -> None:
    items = [
        _item("keras", "3.15.1", "absl-py", "numpy", "namex", "optree"),
        _item("optree", "0.20.0", "typing-extensions>=4.10"),
        _item("namex", "0.1.0"),
        _item("numpy", "2.4.6"),
        _item("absl-py", "2.5.1"),
        _item("typing_extensions", "4.16.0"),
        _item("alembic", "1.20.1", "SQLAlchemy>=2.0", 'tomli; python_version < "3.11"'),
        _item("SQLAlchemy", "2.1.9", 'greenlet; extra == "asyncio"'),
        _item("pytest-benchmark", "5.3.1", "py-cpuinfo2", 'pygal; extra == "histogram"'),
        _item("py-cpuinfo2", "10.1.1"),
        _item("pygal", "3.1.3"),
    ]
    bundled, machine = prepare.split(items, ["keras>=3", "alembic", "pytest-benchmark[histogram]"], "3.12")
    assert bundled == {
        "keras": "3.15.1",
        "optree": "0.20.0",
        "namex": "0.1.0",
        "alembic": "1.20.1",
        "sqlalchemy": "2.1.9",
    }
    # The machine's own packages, and what only they need, stand in for it in the dry run; never bundled.
    assert set(machine) == {"numpy", "absl-py", "typing-extensions", "pytest-benchmark", "py-cpuinfo2", "pygal"}


def test_the_bundle_script_asks_for_fmbench_requirements_without_the_linters(prepare) -> None:
    run, build = prepare.wanted_requirements()
    names = {prepare.requirement_name(r) for r in run}
    assert {"keras", "keras-tuner", "optuna", "optuna-integration", "jax", "pytest", "six"} <= names
    assert not names & prepare.DEV_ONLY
    assert any(prepare.requirement_name(r) == "setuptools" for r in build)
