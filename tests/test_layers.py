"""The package's layering, read from the source: no import cycle, no import upward, no private names across modules.

Every `import` counts, inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fmbench"

# Lowest first. A module may import modules of its own layer or below; a package name covers its modules.
LAYERS = [
    ["fmbench", "fmbench.atomic", "fmbench.registry", "fmbench.space", "fmbench.stats"],
    ["fmbench.spec"],
    [
        "fmbench.profiles",
        "fmbench.data",
        "fmbench.budget",
        "fmbench.telemetry",
        "fmbench.heartbeat",
        "fmbench.placement",
        "fmbench.backend",
    ],
    ["fmbench.models"],
    # Replayed training: the table's storage, its surrogate and the replay trainer, below the searchers that use it.
    ["fmbench.replay"],
    ["fmbench.search", "fmbench.search.base"],  # what every backend shares
    ["fmbench.search.keras_tuner", "fmbench.search.optuna", "fmbench.search.sklearn"],
    # keras-tuner's chief/worker mode, built on the keras_tuner backend: its parts, the chief and the worker, then the
    # package's face (and its __main__), which protocol and cli import.
    [
        "fmbench.search.distributed.options",
        "fmbench.search.distributed.rundir",
        "fmbench.search.distributed.patches",
    ],
    [
        "fmbench.search.distributed.serving",
        "fmbench.search.distributed.worker",
        "fmbench.search.distributed.worker_tuner",
    ],
    ["fmbench.search.distributed"],
    ["fmbench.protocol"],
    ["fmbench.schema"],
    ["fmbench.results"],
    ["fmbench.machine"],  # raises results.ResultsError for a hook that sets a column rows lack
    ["fmbench.replay.build", "fmbench.replay.cli"],  # the measurement records the machine and commit
    ["fmbench.run_rows"],
    ["fmbench.resultset"],
    ["fmbench.suite", "fmbench.report", "fmbench.gate"],
    ["fmbench.history"],  # the gate's check across commits, drawn with the report's plots
    ["fmbench.cli", "fmbench.__main__"],
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    """The layer of a module: its own entry, else its package's (fmbench.models.mlp is in fmbench.models')."""
    name = module
    while name:
        for rank, names in enumerate(LAYERS):
            if name in names:
                return rank
        name = name.rpartition(".")[0]
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it where it belongs")


def _imports(module: str) -> dict[str, str]:
    """The fmbench modules a module imports, each with the local name it is bound to."""
    tree = ast.parse(MODULES[module].read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update({alias.name: alias.asname or alias.name for alias in node.names if alias.name in MODULES})
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fmbench"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found[target if target in MODULES else node.module] = alias.asname or alias.name
    found.pop(module, None)
    return found


GRAPH = {module: set(_imports(module)) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_reaches_a_higher_layer(module):
    upward = [target for target in GRAPH[module] if _layer(target) > _layer(module)]
    assert not upward, f"{module} (layer {_layer(module)}) imports upward: {upward}"


def test_no_import_cycle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(module) :] + [module])}")
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, path + [module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_module(module):
    tree = ast.parse(MODULES[module].read_text())
    imported_from = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmbench")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    local = {name: target for target, name in _imports(module).items()}
    accessed = [
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in local
        if node.attr.startswith("_") and not node.attr.startswith("__")
    ]
    assert not imported_from and not accessed, (
        f"{module} uses private names of other modules: {imported_from + accessed}"
    )


def test_the_checker_sees_a_planted_cycle_and_an_upward_import(monkeypatch):
    planted = {**GRAPH, "fmbench.spec": GRAPH["fmbench.spec"] | {"fmbench.protocol"}}
    monkeypatch.setitem(globals(), "GRAPH", planted)
    with pytest.raises(AssertionError, match="imports upward"):
        test_no_import_reaches_a_higher_layer("fmbench.spec")
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()
