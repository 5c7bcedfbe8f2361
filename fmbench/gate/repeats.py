"""A reference made of repeats: the mean of R complete runs of one matrix, with the run-to-run noise between them.

A difference from it carries 1/R of the reference's own luck, and the floors a check takes from its noise
(fmbench.gate.noise.floors_of) come from runs that no later check is judged on. `fmbench calibrate reference`
writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmbench import resultset
from fmbench.gate import RegressError, evidence, noise
from fmbench.gate import reference as ref_io


def repeated_reference(run_dirs: list[Path]) -> dict:
    """A reference that is the mean of R complete runs of one matrix (same cells and seeds, harmless changes between
    them such as the weight seed), with the run-to-run noise per test they measured (`noise_sd`): a difference from
    it carries 1/R of the reference's own luck, and its floors come from runs that no later check is judged on."""
    if len(run_dirs) < 2:
        raise RegressError(f"a repeated reference needs 2 or more runs, got {len(run_dirs)}; name each run's folder")
    sets = [resultset.load(Path(folder)) for folder in run_dirs]
    first = ref_io.build(sets[0])
    for folder, rs in zip(run_dirs[1:], sets[1:]):
        ref_io.check_comparable(rs, first)
        cells = {(c["tuner"], c["budget"]): sorted(c["runs"]) for c in ref_io.build(rs)["cells"]}
        if cells != {(c["tuner"], c["budget"]): sorted(c["runs"]) for c in first["cells"]}:
            raise RegressError(
                f"{folder} ran other cells or seeds than {run_dirs[0]}; repeats must run the same matrix"
            )
    records = [{(c["tuner"], c["budget"]): c["runs"] for c in ref_io.build(rs)["cells"]} for rs in sets]
    for cell in first["cells"]:
        for seed, run in cell["runs"].items():
            accuracies = [r[(cell["tuner"], cell["budget"])][seed]["test_accuracy"] for r in records]
            run["test_accuracy"] = round(float(np.mean(accuracies)), 9)
            run["test_accuracies"] = accuracies
    first["repeats"] = len(sets)
    first["repeat_folders"] = [str(folder) for folder in run_dirs]
    first["commit"] = ", ".join(sorted({ref_io.describe(rs)["commit"] for rs in sets}))
    first["noise_sd"] = noise.repeat_sd([evidence.evidence(rs, first)[1] for rs in sets])
    return first
