"""Search spaces as data, declared once: each knob's name, range, step, scale and the condition that switches it on.

Every library that searches a space reads it through one adapter here, so no library keeps its own copy:
`declare_keras_tuner` (keras-tuner's tuners and its grid), `suggest_optuna` (Optuna's samplers) and `from_unit`
(a point of the unit cube, for samplers and trainers that use no tuning library, e.g. a Sobol sequence). Each
adapter's draws are tested against the declared marginals (tests/test_space.py), not its declaration: a library's
own arithmetic can drop values (keras-tuner's `Float(0.0, 0.5, step=0.1)` never draws 0.5, see
`declare_keras_tuner`).

No library is imported here: the adapters call the objects they are given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    """One hyperparameter: an integer or float range (`step` makes it a grid low, low + step, ..., high; `log`
    samples a continuous float uniformly in its logarithm) or a choice among `choices`; with `active_when`, it is
    used only when the knob it names takes one of the given values."""

    name: str
    kind: str  # "int", "float" or "choice"
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple = ()
    active_when: tuple[str, tuple] | None = None
    default: int | float | str | None = None  # the value before a tuner sets one; None: the first of the grid or low

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "choice"):
            raise ValueError(f"knob {self.name!r}: kind must be int, float or choice, got {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"knob {self.name!r}: a choice needs at least one value")
        if self.kind != "choice" and not self.low < self.high:
            raise ValueError(f"knob {self.name!r}: needs low < high, got {self.low}..{self.high}")
        if self.kind == "int" and self.step is None:
            raise ValueError(f"knob {self.name!r}: an int knob needs a step (1 for every integer)")
        if self.step is not None and self.log:
            raise ValueError(f"knob {self.name!r}: a stepped knob is uniform over its grid; drop log")
        if self.step is not None and abs(self._steps() - (self.high - self.low) / self.step) > 1e-9:
            raise ValueError(f"knob {self.name!r}: {self.low}..{self.high} is not a whole number of steps {self.step}")

    def _steps(self) -> int:
        # Counted by rounding, not floor division: (0.5 - 0.0) // 0.1 == 4.0 in floating point.
        return round((self.high - self.low) / self.step)

    @property
    def grid(self) -> tuple | None:
        """Every value the knob can take, in order; None for a continuous float."""
        if self.kind == "choice":
            return self.choices
        if self.step is None:
            return None
        values = (self.low + k * self.step for k in range(self._steps() + 1))
        # Rounded so that 0.1 * 3 shows as 0.3, the value every adapter reports.
        return tuple(int(round(v)) if self.kind == "int" else round(v, 10) for v in values)

    def value_at(self, u: float) -> int | float | str:
        """The value at quantile u in [0, 1) of the knob's distribution: uniform over a grid, else over the range
        (or its logarithm)."""
        grid = self.grid
        if grid is not None:
            return grid[min(int(u * len(grid)), len(grid) - 1)]
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Space:
    """A search space: its knobs in declaration order (a knob's condition names a knob declared before it)."""

    name: str
    knobs: tuple[Knob, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for knob in self.knobs:
            if knob.active_when is not None and knob.active_when[0] not in seen:
                raise ValueError(
                    f"space {self.name!r}: {knob.name} depends on {knob.active_when[0]}, not declared before it"
                )
            seen.add(knob.name)

    def __getitem__(self, name: str) -> Knob:
        return next(knob for knob in self.knobs if knob.name == name)

    def is_active(self, knob: Knob, values: dict) -> bool:
        if knob.active_when is None:
            return True
        parent, switched_on = knob.active_when
        return parent in values and values[parent] in switched_on

    def active(self, values: dict) -> dict:
        """The values that shape a model, keys sorted (stable JSON in result tables): drops inactive knobs and a
        library's bookkeeping (keras-tuner's 'tuner/...' keys)."""
        kept: dict = {}
        for knob in self.knobs:
            if knob.name in values and self.is_active(knob, kept):
                kept[knob.name] = values[knob.name]
        return dict(sorted(kept.items()))


def declare_keras_tuner(space: Space, hp) -> dict:
    """Declare every knob on a keras_tuner.HyperParameters `hp` (conditions included, so the oracle samples the
    whole space from its first trial); returns the active values it holds now.

    A stepped float is declared as a Choice of its grid: keras-tuner counts a Float's grid as
    `(max - min) // step + 1` in floating point, so `Float(0.0, 0.5, step=0.1)` (4.0 steps) never draws 0.5.
    A Choice of numbers is ordered, so the Gaussian process of BayesianOptimization still sees a scale.
    """
    values: dict = {}
    for knob in space.knobs:
        if knob.active_when is None:
            values[knob.name] = declare_knob(knob, hp)
        else:
            parent, switched_on = knob.active_when
            with hp.conditional_scope(parent, list(switched_on)):
                values[knob.name] = declare_knob(knob, hp)
    return space.active({name: value for name, value in values.items() if value is not None})


def declare_knob(knob: Knob, hp):
    """Declare one knob on a keras_tuner.HyperParameters (in the caller's scopes); returns its value, None when
    its condition is off. keras-tuner keeps the first declaration of a name in a scope, so declaring a knob
    before a library's own model builder replaces that builder's declaration (fmbench.models.cnn)."""
    if knob.kind == "int":
        return hp.Int(knob.name, int(knob.low), int(knob.high), step=int(knob.step), default=knob.default)
    if knob.grid is not None:
        return hp.Choice(knob.name, list(knob.grid), default=knob.default)
    return hp.Float(knob.name, knob.low, knob.high, sampling="log" if knob.log else "linear", default=knob.default)


def suggest_optuna(space: Space, trial) -> dict:
    """Ask an optuna.Trial for every active knob, in declaration order (define-by-run: a knob whose condition is
    off is never asked)."""
    values: dict = {}
    for knob in space.knobs:
        if not space.is_active(knob, values):
            continue
        if knob.kind == "int":
            values[knob.name] = trial.suggest_int(knob.name, int(knob.low), int(knob.high), step=int(knob.step))
        elif knob.kind == "choice":
            values[knob.name] = trial.suggest_categorical(knob.name, list(knob.choices))
        elif knob.step is not None:
            # Optuna's grid points are low + k * step in floating point: rounded to the grid's values.
            values[knob.name] = round(trial.suggest_float(knob.name, knob.low, knob.high, step=knob.step), 10)
        else:
            values[knob.name] = trial.suggest_float(knob.name, knob.low, knob.high, log=knob.log)
    return values


def from_unit(space: Space, point: Sequence[float]) -> dict:
    """The configuration at a point of the unit cube, one coordinate per knob in declaration order (inactive knobs'
    coordinates are ignored): a uniform point gives a uniform draw of the space, a low-discrepancy point set
    (scipy.stats.qmc.Sobol) an even cover of it."""
    if len(point) != len(space.knobs):
        raise ValueError(f"space {space.name!r} has {len(space.knobs)} knobs; got a point of {len(point)} coordinates")
    values: dict = {}
    for knob, u in zip(space.knobs, point):
        if space.is_active(knob, values):
            values[knob.name] = knob.value_at(float(u))
    return values


MAX_LAYERS = 5


def _layer_knobs(i: int) -> tuple[Knob, Knob]:
    # Layer i exists when the model has more than i layers.
    when = ("num_layers", tuple(range(i + 1, MAX_LAYERS + 1)))
    return (
        Knob(f"units_{i}", "int", 32, 512, step=32, active_when=when),
        Knob(f"dropout_{i}", "float", 0.0, 0.5, step=0.1, active_when=when),
    )


# The four knobs of the classic Keras Tuner Fashion-MNIST example, per layer for up to five layers. The order is
# the order every adapter asks in: keras-tuner's random streams advance one sample per active knob.
MLP = Space(
    "mlp",
    (
        Knob("num_layers", "int", 1, MAX_LAYERS, step=1),
        *(knob for i in range(MAX_LAYERS) for knob in _layer_knobs(i)),
        Knob("learning_rate", "float", 1e-4, 1e-2, log=True),
    ),
)
