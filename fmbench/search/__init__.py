"""Search backends, one module each: keras_tuner, optuna and sklearn, plus keras-tuner's chief/worker mode
(distributed). They share base.py and import nothing above it; fmbench.registry says which tuner each runs."""
