"""Replayed searches: a measured table of learning curves of the MLP space, a surrogate fitted to it, and a trainer
that answers the real tuners from them instead of training.

configs.py      which configurations a table measures (a scrambled Sobol cover of fmbench.space.MLP), their seeds,
                a shard's share
table.py        the table's storage: header.json and table.csv.gz (resumable, locked, whole rows only)
build.py        the measurement: each (configuration, seed) trained through KerasTrainer, scored after every epoch
surrogate.py    scikit-learn models of accuracy at (configuration, epoch), seed noise, seconds
fidelity.py     the surrogate judged on held-out configurations, written as markdown
trainer.py      ReplayTrainer (the Trainer seam of fmbench.models.trainer) and its clock
cli.py          `fmbench table build | fit`
"""
