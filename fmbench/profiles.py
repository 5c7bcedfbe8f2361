"""Named benchmark matrices. Durations in the README are measured with these exact settings.

Every budget lets each tuner run its own algorithm: Hyperband (factor 3) finishes at least its first
bracket, promotions included (Profile checks this for trial and epoch budgets; the committed runs show it
for time budgets), and BayesianOptimization's Gaussian process picks at least half the trials of each
trial and epoch budget (search.base.initial_points). Epoch budgets are the fair unit between Hyperband
and the full-fidelity tuners; trial budgets only between full-fidelity ones.

Each profile runs on the Keras backend that is faster at its sizes (docs/backends.md, measured by
benchmarks/test_trial_cost.py into results/trial-cost): JAX's epochs are about twice as fast on the whole
training set, but it compiles every new model with XLA, which costs more than its faster epochs save on a few
thousand images, so smoke and quick stay on TensorFlow. The GPU profiles are on JAX, the only backend the GPU
machines at hand have.
"""

from __future__ import annotations

import dataclasses

from fmbench.spec import Budget, DataSizes, Profile, SpecError

REPLAY = Profile(
    name="replay",
    description="standard's 100-epoch cells replayed from a table of its measured learning curves (`fmbench "
    "table build`), in the table's seconds: the real tuners, no training, 200 seeds",
    # The sizes, epochs and batch size the table was measured with (standard's, `fmbench table build`'s
    # default): the replay refuses labels, epochs and batch sizes its table did not measure.
    sizes=DataSizes(),
    epochs=10,
    batch_size=128,
    seeds=tuple(range(1, 201)),  # a cell costs only the search's own work, so seeds are cheap
    tuners=("random", "hyperband", "bayesian", "tpe"),
    # standard's 100-epoch budget, the one its 20 fresh seeds ran (results/standard-fresh): the fidelity test.
    # Most of a replay's time is keras-tuner's Gaussian process proposing (a median 8.7 s of a Bayesian search on
    # this 2-core CPU, 0.3 to 0.7 s for the others: results/replay/cost-seeds-1-20.json); `fmbench run --profile
    # replay` replays the other budgets.
    budgets=(Budget(max_epochs=100),),
    backend="jax",  # standard's, on which `fmbench table build` measures its curves by default
    trainer="replay",
    replay_table="results/replay-table",
)

# A gate tier of replays (docs/gate.md, "A replay tier"): deterministic for a table and the libraries' versions, so
# hundreds of seeds judge a tuner's search logic in minutes. The fast tuners only: keras-tuner's Bayesian
# optimisation spends a median 8.7 s of this 2-core CPU per replayed search in its Gaussian process (200 seeds would
# add about 15 minutes on two workers), and the trained gate judges it. CI runs seeds 1-100 of it (GATE_SEEDS).
REPLAY_GATE = dataclasses.replace(
    REPLAY,
    name="replay-gate",
    description="a gate tier of replays (docs/gate.md): the replay profile's 100-epoch cells of random search, "
    "Hyperband, TPE and TPE-Hyperband, 200 seeds; minutes on 2 CPU cores",
    tuners=("random", "hyperband", "tpe", "tpe-hyperband"),
)

PROFILES = {
    profile.name: profile
    for profile in (
        Profile(
            name="smoke",
            description="CI: a few thousand images, 3 epochs, small budgets, 3 seeds, Keras Tuner's tuners "
            "and Optuna's; minutes on 2 CPU cores",
            sizes=DataSizes(train=1500, val=500, test=1000),
            epochs=3,  # Hyperband brackets of 1 and 3 epochs; its first bracket is 4 trials, 5 epochs
            batch_size=128,
            seeds=(1, 2, 3),
            tuners=("random", "hyperband", "bayesian", "tpe", "tpe-hyperband"),
            budgets=(Budget(max_trials=4), Budget(max_epochs=12), Budget(max_seconds=20)),
        ),
        Profile(
            name="quick",
            description="a first real answer on a laptop CPU: 6k training images, the whole test set, 4 "
            "epochs, Hyperband's three rungs, 5 seeds",
            sizes=DataSizes(train=6000, val=2000, test=10000),
            # Hyperband with factor 2 has three rungs (1, 2 and 4 epochs); its first bracket is 7 trials, 8
            # epochs. Two epoch budgets (3 and 9 full-length trials; the fair unit between Hyperband and the
            # others) and a time budget, so no two cells of a full-fidelity tuner are the same search.
            epochs=4,
            hyperband_factor=2,
            batch_size=128,
            seeds=(1, 2, 3, 4, 5),
            budgets=(Budget(max_epochs=12), Budget(max_epochs=36), Budget(max_seconds=20)),
        ),
        Profile(
            name="gate",
            description="CI's gate (docs/gate.md): quick's sizes and 4 epochs, one 12-epoch budget per tuner, 16 "
            "seeds, no time limit (a cell's accuracy does not depend on the machine's speed); minutes on 2 CPU cores",
            # A model on 6,000 images moves about a third as much across weight seeds as one on 1,500 (the
            # baseline: 0.43 against 1.36 points), and 16 seeds give each tuner's test 15 degrees of freedom.
            sizes=DataSizes(train=6000, val=2000, test=10000),
            epochs=4,
            hyperband_factor=2,  # rungs of 1, 2 and 4 epochs; its first bracket is 7 trials, 8 epochs
            batch_size=128,
            seeds=tuple(range(1, 17)),
            tuners=("random", "hyperband", "bayesian", "tpe", "tpe-hyperband"),
            budgets=(Budget(max_epochs=12),),
        ),
        Profile(
            name="standard",
            description="the whole training set, 10 epochs, 5 seeds, mid-size budgets (the epoch cells take "
            "2 to 3 minutes each on JAX on a 2-core CPU; the 300 s cells buy what the machine does in 5 minutes)",
            sizes=DataSizes(),
            epochs=10,  # Hyperband's first bracket: 18 trials of 2, 4 and 10 epochs, 44 epochs
            batch_size=128,
            seeds=(1, 2, 3, 4, 5),
            budgets=(Budget(max_trials=20), Budget(max_epochs=100), Budget(max_seconds=300)),
            backend="jax",
        ),
        REPLAY,
        REPLAY_GATE,
        Profile(
            name="full",
            description="GPU: the whole dataset, Hyperband max_epochs=10 factor=3, 30 trials, 200 epochs or "
            "10 minutes, 5 seeds",
            sizes=DataSizes(),
            epochs=10,
            batch_size=128,
            seeds=(1, 2, 3, 4, 5),
            budgets=(Budget(max_trials=30), Budget(max_epochs=200), Budget(max_seconds=600)),
            backend="jax",
        ),
        Profile(
            name="cnn",
            description="GPU: keras-tuner's HyperResNet / HyperXception on the whole dataset, 3 seeds, 20 "
            "trials, 100 epochs or 30 minutes",
            sizes=DataSizes(),
            epochs=10,
            batch_size=128,
            seeds=(1, 2, 3),
            budgets=(Budget(max_trials=20), Budget(max_epochs=100), Budget(max_seconds=1800)),  # as standard's, longer
            backend="jax",
            space="cnn",
        ),
    )
}
DEFAULT_PROFILE = "quick"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise SpecError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
