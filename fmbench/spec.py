"""The contract: every type shared between fmbench's modules, in one place.

It is longer than the other modules on purpose: a RunSpec flows to a row through the protocol, the searchers,
the trainers and the report, and each of them reads these types and nothing of the others. Kept together, the
contract is read in one file, and a module that needs a shared type imports it from below, never from a sibling.
"""

from __future__ import annotations

import math
import numbers
import zlib
from dataclasses import dataclass, field

import numpy as np

from fmbench import registry
from fmbench.registry import BASELINE, BASELINES, DEFAULT_TUNERS, RUNNER_NAMES, RUNNERS

# Search spaces: the MLP of fmbench/models/mlp.py, or keras-tuner's HyperResNet / HyperXception
# (fmbench/models/cnn.py); which tuner searches which is the registry's.
SPACES = ("mlp", "cnn")

# Why a search ended. Every run row carries exactly one of these.
STOPPED_BY = ("trials", "time", "epochs", "exhausted", "error")

# How a run's models are trained: "keras" for real, by the tuner's own trainer (registry.Runner.trainer: Keras, or
# scikit-learn's for its tuners); "replay" looks every Keras fit up in a table of measured learning curves
# (fmbench.replay), in table seconds. Each is its own population: rows record it, and no comparison mixes two.
TRAINED_BY = ("keras", "replay")

# A trial's status: keras-tuner's COMPLETED / FAILED / INVALID, or CUT when a budget stopped its fit before
# its planned epochs. A cut trial was scored at a lower fidelity than it asked for, so it is never the best.
CUT = "CUT"


class SpecError(ValueError):
    """Bad user input: the message names the problem and the fix, on one line."""


def parse_seeds(text: str, option: str) -> tuple[int, ...]:
    """Seeds from a comma list whose items may be ranges ("1,4,10-20"), in the order given, each once; anything
    else is a SpecError naming the option."""
    usage = f"{option} must be a comma list of seeds >= 1 or ranges of them (e.g. 1,2,3 or 1-100), got {text!r}"
    seeds: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        first, dash, last = item.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise SpecError(usage)
        low, high = int(first), int(last) if dash else int(first)
        if low < 1 or high < low:
            raise SpecError(usage)
        seeds += range(low, high + 1)
    return tuple(dict.fromkeys(seeds))  # each seed once, where it first appears


def format_seeds(seeds) -> str:
    """Sorted seeds as parse_seeds reads them, runs of consecutive seeds as ranges: "1-100,150"."""
    ordered, runs = sorted(set(seeds)), []
    for seed in ordered:
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def _stops(tuner: str, budget: Budget) -> bool:
    """Whether the budget can stop the tuner's search: an epoch budget alone never stops one that trains none
    (a fixed model has no search to stop)."""
    runner = RUNNERS[tuner]
    return runner.fixed or runner.trains_epochs or budget.max_trials is not None or budget.max_seconds is not None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Budget:
    """What a search may spend: trials, wall-clock seconds, training epochs summed over all trials, or several
    (the first one hit stops it). Epochs are the fair unit between Hyperband and full-fidelity tuners."""

    max_trials: int | None = None
    max_seconds: float | None = None
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.max_trials is not None and not (_is_int(self.max_trials) and self.max_trials >= 1):
            raise SpecError(f"max_trials must be a whole number >= 1, got {self.max_trials!r}")
        if self.max_seconds is not None and not (
            isinstance(self.max_seconds, numbers.Real)
            and not isinstance(self.max_seconds, bool)
            and math.isfinite(self.max_seconds)
            and self.max_seconds > 0
        ):
            raise SpecError(f"max_seconds must be a finite number > 0, got {self.max_seconds!r}")
        if self.max_epochs is not None and not (_is_int(self.max_epochs) and self.max_epochs >= 1):
            raise SpecError(f"max_epochs must be a whole number >= 1, got {self.max_epochs!r}")

    @property
    def label(self) -> str:
        """Short stable name used in cell ids and tables, e.g. 'trials6', 'epochs45', 'time30s', 'trials6-time30s'."""
        parts = []
        if self.max_trials is not None:
            parts.append(f"trials{self.max_trials}")
        if self.max_epochs is not None:
            parts.append(f"epochs{self.max_epochs}")
        if self.max_seconds is not None:
            parts.append(f"time{self.max_seconds:g}s")
        return "-".join(parts) or "none"

    @property
    def is_empty(self) -> bool:
        return self.max_trials is None and self.max_seconds is None and self.max_epochs is None


@dataclass(frozen=True)
class DataSizes:
    """How many images of each split a run uses; None means the whole split."""

    train: int | None = None
    val: int | None = None
    test: int | None = None

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise SpecError(f"data size {name}={value} is too small: use at least 10 images (one per class)")


@dataclass(frozen=True)
class RunSpec:
    """One run: a tuner (or the baseline) under a budget, with one seed, on fixed data and training settings."""

    tuner: str
    seed: int
    budget: Budget = Budget()
    sizes: DataSizes = DataSizes()
    epochs: int = 10  # per trial (Hyperband's max_epochs) and for the final retrain
    batch_size: int = 128
    profile: str = "custom"
    hyperband_factor: int = 3
    space: str = "mlp"
    # Shifts the weights' and data order's seed, never the search's: what a harmless change to the order of random
    # draws does. 0 (every real run) keeps `seed`; the gate's noise runs use 1, 2, ... (docs/gate.md).
    init_seed_offset: int = 0
    trainer: str = "keras"  # one of TRAINED_BY
    replay_table: str = ""  # the table folder a replayed run looks its fits up in (`fmbench table build`)

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise SpecError(f"unknown search space {self.space!r}: choose one of {', '.join(SPACES)}")
        if self.tuner not in RUNNERS:
            raise SpecError(f"unknown tuner {self.tuner!r}: choose one of {', '.join(RUNNER_NAMES)}")
        if self.space not in RUNNERS[self.tuner].spaces:
            raise SpecError(
                f"tuner {self.tuner!r} searches the mlp space only: with --space {self.space} "
                f"use one of {', '.join(registry.names_for_space(self.space))}"
            )
        if not (_is_int(self.seed) and self.seed >= 1):
            raise SpecError(
                f"seed must be an integer >= 1 (keras-tuner turns seed 0 into a random seed), got {self.seed!r}"
            )
        if not (_is_int(self.init_seed_offset) and self.init_seed_offset >= 0):
            raise SpecError(f"the init seed offset must be an integer >= 0, got {self.init_seed_offset!r}")
        if self.tuner not in BASELINES and self.budget.is_empty:
            raise SpecError(
                f"tuner {self.tuner!r} needs a budget: give --max-trials N, --max-epochs E and/or --max-seconds S"
            )
        if not _stops(self.tuner, self.budget):
            raise SpecError(
                f"tuner {self.tuner!r} trains no epochs, so an epoch budget never stops it: give --max-trials "
                "N or --max-seconds S"
            )
        if self.epochs < 1:
            raise SpecError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise SpecError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.hyperband_factor < 2:
            raise SpecError(
                f"hyperband_factor must be >= 2 (keras-tuner's Hyperband halves by it), got {self.hyperband_factor}"
            )
        self._check_trainer()

    def _check_trainer(self) -> None:
        """A replay answers only what its table measured: Keras MLPs, looked up in a named table folder."""
        if self.trainer not in TRAINED_BY:
            raise SpecError(f"unknown trainer {self.trainer!r}: choose one of {', '.join(TRAINED_BY)}")
        if self.trainer != "replay":
            if self.replay_table:
                raise SpecError(f"a replay table ({self.replay_table}) is for replayed runs: use the replay profile")
            return
        if self.space != "mlp":
            raise SpecError(
                f"a replay table holds learning curves of the mlp space, not {self.space}: replay with --space mlp, "
                "or train the cnn space for real (the cnn profile)"
            )
        if RUNNERS[self.tuner].trainer != "keras":
            raise SpecError(
                f"tuner {self.tuner!r} trains {RUNNERS[self.tuner].trainer} models, which a replay table does not "
                f"hold: replay one of {', '.join(registry.REPLAYABLE)}"
            )
        if not self.replay_table:
            raise SpecError(
                "a replayed run needs its table folder (replay_table): build one with `fmbench table build`"
            )

    @property
    def search_seed(self) -> int:
        """The seed of the search's random streams (oracle, sampler, cross-validation folds); `seed` stays the
        seed of the weights and data order.

        keras-tuner samples value k of a search with random.Random(seed + k), so run seeds 1, 2, 3 passed
        straight in walk one sequence shifted by a sample. Each cell's search seed is instead a 31-bit number
        drawn by numpy's SeedSequence from (run seed, tuner, budget): two cells' streams overlap only if their
        seeds land within a search's length of each other, about 1e-6 for a 1,000-sample search. Tuners and
        budgets of one seed are independent searches too (no common random numbers): each row is an
        experiment of its own, and tuners are paired with the baseline by the weight seed alone.
        """
        key = zlib.crc32(f"{self.space}/{self.tuner}/{self.budget.label}".encode())
        drawn = int(np.random.SeedSequence([self.seed, key]).generate_state(1)[0]) >> 1
        return drawn or 1  # keras-tuner turns seed 0 into a random seed

    @property
    def weight_seed(self) -> int:
        """The seed of the weights and the data order: the run seed itself, or with an init seed offset a 31-bit
        number drawn from (seed, offset), so that no offset lands on another run seed's weights."""
        if not self.init_seed_offset:
            return self.seed
        return int(np.random.SeedSequence([self.seed, self.init_seed_offset]).generate_state(1)[0]) >> 1 or 1

    @property
    def cell(self) -> str:
        """Readable id of this cell of the matrix, e.g. 'hyperband-trials6-seed1' or 'baseline-seed1'."""
        prefix = "" if self.space == "mlp" else f"{self.space}-"
        if self.tuner in BASELINES:
            return f"{prefix}{self.tuner}-seed{self.seed}"
        return f"{prefix}{self.tuner}-{self.budget.label}-seed{self.seed}"


@dataclass(frozen=True)
class Profile:
    """A named matrix: data sizes, training settings, seeds, tuners and budgets; expands to RunSpecs."""

    name: str
    description: str
    sizes: DataSizes
    epochs: int
    batch_size: int
    seeds: tuple[int, ...]
    tuners: tuple[str, ...] = DEFAULT_TUNERS
    budgets: tuple[Budget, ...] = field(default_factory=tuple)
    hyperband_factor: int = 3
    space: str = "mlp"
    # The Keras backend its cells run on unless --backend or $KERAS_BACKEND says otherwise: the faster one at its
    # sizes on the machines at hand (fmbench.profiles says which and why).
    backend: str = "tensorflow"
    trainer: str = "keras"  # RunSpec.trainer of every cell
    replay_table: str = ""  # RunSpec.replay_table of every cell

    def __post_init__(self) -> None:
        # A "hyperband" row under a budget that ends inside the first bracket would be a 1-epoch random search.
        if "hyperband" not in self.tuners:
            return
        if self.epochs < self.hyperband_factor:
            raise SpecError(
                f"profile {self.name!r}: {self.epochs} epochs give Hyperband (factor {self.hyperband_factor}) "
                f"a single round and no promotion; use epochs >= {self.hyperband_factor}"
            )
        trials, epochs = registry.hyperband_first_bracket(self.epochs, self.hyperband_factor)
        for budget in self.budgets:
            if (budget.max_trials or trials) < trials or (budget.max_epochs or epochs) < epochs:
                raise SpecError(
                    f"profile {self.name!r}: budget {budget.label} ends inside Hyperband's first bracket "
                    f"({trials} trials, {epochs} epochs at {self.epochs} epochs, factor "
                    f"{self.hyperband_factor}); raise it"
                )

    def spec(self, tuner: str, seed: int, budget: Budget = Budget()) -> RunSpec:
        """The RunSpec of one cell of this profile (the baseline takes no budget)."""
        return RunSpec(
            tuner=tuner,
            seed=seed,
            budget=Budget() if tuner in BASELINES else budget,
            sizes=self.sizes,
            epochs=self.epochs,
            batch_size=self.batch_size,
            profile=self.name,
            hyperband_factor=self.hyperband_factor,
            space=self.space,
            trainer=self.trainer,
            replay_table=self.replay_table,
        )

    def expand(self, tuners: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None) -> list[RunSpec]:
        """Every cell (or those of the given tuners and seeds): baselines first, then tuner x budget x seed."""
        tuners = self.tuners if tuners is None else tuners
        seeds = self.seeds if seeds is None else seeds
        specs = [self.spec(BASELINE, seed) for seed in seeds]
        for tuner in tuners:
            for budget in [Budget()] if tuner in BASELINES else self.budgets:  # a fixed model has no budget
                if not _stops(tuner, budget):
                    continue  # no epochs to count: an epoch budget has no cell for it
                specs.extend(self.spec(tuner, seed, budget) for seed in seeds)
        return specs


@dataclass(frozen=True)
class TelemetrySummary:
    """Resource use over one window (a run or a trial). GPU fields are None where no GPU was seen, never 0."""

    samples: int = 0
    cpu_util_mean: float | None = None  # this process, percent of one core (200 = two cores busy)
    system_cpu_util_mean: float | None = None  # whole machine, percent of all cores
    rss_peak_mb: float | None = None
    gpu_util_mean: float | None = None
    gpu_util_p95: float | None = None
    gpu_util_max: float | None = None
    gpu_mem_peak_mb: float | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search: what it tried, how it scored, what it cost."""

    trial_id: str
    hyperparameters: dict
    status: str  # keras-tuner's COMPLETED, FAILED, INVALID, or CUT (see CUT)
    val_accuracy: float | None  # after the trial's last epoch; None unless COMPLETED
    epochs: int  # full epochs this trial trained (a promoted Hyperband trial counts only its own)
    started_seconds: float  # since the search began
    seconds: float
    error: str = ""
    telemetry: TelemetrySummary = TelemetrySummary()
    worker: str = ""  # keras-tuner tuner_id of the process that ran it; "" in a single-process run
    # Hyperband's schedule (None for other tuners): a promoted trial continues its parent's weights from
    # initial_epoch, so a reader can follow each promotion.
    bracket: int | None = None
    round: int | None = None
    initial_epoch: int | None = None
    parent_trial_id: str | None = None
    # A model-based tuner's trial: "model" if its model proposed it, "random" if its random start did; "" else.
    proposed_by: str = ""


@dataclass(frozen=True)
class SearchOutcome:
    """What a searcher hands the protocol: its trials, the best configuration and score, what stopped it, its cost.

    A fixed model's searcher proposes one configuration and scores nothing (`best_val_accuracy` None): the
    protocol scores the retrained model on the validation split instead.
    """

    best_hyperparameters: dict
    stopped_by: str
    best_val_accuracy: float | None = None
    trials: tuple[TrialRecord, ...] = ()
    trials_completed: int = 0
    trials_failed: int = 0
    trials_cut: int = 0
    search_epochs: int = 0
    search_seconds: float = 0.0
    time_overrun_seconds: float | None = None
    brackets_completed: int | None = None
    model_trials: int | None = None


@dataclass(frozen=True)
class FinalFit:
    """The chosen configuration retrained from fresh weights on the training split, then tested once; the
    defaults are a final fit that never ran (the search failed)."""

    test_accuracy: float | None = None
    test_loss: float | None = None
    val_accuracy: float | None = None  # scored only for a fixed model, whose search scored nothing
    retrain_seconds: float = 0.0
    retrain_epochs: int = 0
    evaluate_seconds: float = 0.0


@dataclass(frozen=True)
class RunResult:
    """One run: its spec, the best hyperparameters, test accuracy, cost, and why it stopped."""

    spec: RunSpec
    run_id: str
    started_at: str  # ISO 8601, UTC
    best_hyperparameters: dict
    best_val_accuracy: float | None
    test_accuracy: float | None
    test_loss: float | None
    search_seconds: float
    retrain_seconds: float
    evaluate_seconds: float
    trials_completed: int
    trials_failed: int
    search_epochs: int
    retrain_epochs: int
    stopped_by: str
    time_overrun_seconds: float | None  # seconds past max_seconds; None without a time budget
    num_initial_points: int | None = None  # BayesianOptimization's random start, None for others
    error: str = ""
    trials: tuple[TrialRecord, ...] = ()
    telemetry: TelemetrySummary = TelemetrySummary()
    workers: int = 1  # processes that ran trials (fmbench.search.distributed); 1 for the single-process search
    trials_cut: int = 0  # stopped by the budget before their planned epochs (never chosen as best)
    # Hyperband: successive-halving brackets (bracket >= 1) whose last, promoted round completed; None for others.
    brackets_completed: int | None = None
    # Model-based tuners: trials their model proposed among those that ran to a score (completed or pruned; the
    # rest came from the random start); None for the others. A row labelled with such a tuner is one only where
    # this is at least half of those trials.
    model_trials: int | None = None

    @property
    def wall_seconds(self) -> float:
        return self.search_seconds + self.retrain_seconds + self.evaluate_seconds
