"""Named benchmark matrices. Durations in the README are measured with these exact settings."""
from __future__ import annotations

from fmbench.spec import Budget, DataSizes, Profile, SpecError

PROFILES = {
    profile.name: profile
    for profile in (
        Profile(
            name="smoke",
            description="CI: a few thousand images, tiny budgets, 2 seeds; minutes on 2 CPU cores",
            sizes=DataSizes(train=1500, val=500, test=1000),
            epochs=2,
            batch_size=128,
            seeds=(1, 2),
            budgets=(Budget(max_trials=3), Budget(max_seconds=5)),
        ),
        Profile(
            name="quick",
            description="a first real answer on a laptop CPU: 6k training images, the whole test set, 3 seeds",
            sizes=DataSizes(train=6000, val=2000, test=10000),
            epochs=9,  # Hyperband brackets of 1, 3 and 9 epochs (factor 3)
            batch_size=128,
            seeds=(1, 2, 3),
            budgets=(Budget(max_trials=6), Budget(max_seconds=30)),
        ),
        Profile(
            name="standard",
            description="GPU: the whole training set, 3 seeds, mid-size budgets",
            sizes=DataSizes(),
            epochs=10,
            batch_size=128,
            seeds=(1, 2, 3),
            budgets=(Budget(max_trials=15), Budget(max_seconds=300)),
        ),
        Profile(
            name="full",
            description="GPU: the whole dataset, Hyperband max_epochs=10 factor=3, 30 trials or 10 minutes, 5 seeds",
            sizes=DataSizes(),
            epochs=10,
            batch_size=128,
            seeds=(1, 2, 3, 4, 5),
            budgets=(Budget(max_trials=30), Budget(max_seconds=600)),
        ),
        Profile(
            name="cnn",
            description="GPU: keras-tuner's HyperResNet / HyperXception on the whole dataset, 3 seeds, 10 trials or 30 minutes",
            sizes=DataSizes(),
            epochs=10,
            batch_size=128,
            seeds=(1, 2, 3),
            budgets=(Budget(max_trials=10), Budget(max_seconds=1800)),
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
