# Two entry points: `make bench` (set up, run the benchmark on its default profile) and `make test`.
# Fashion-MNIST comes from FMBENCH_DATA_DIR when set, else Keras downloads it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# Where `make bench` writes: `make bench OUT=results/quick` sets it, an OUT in the environment does not.
OUT = results/local/$(PROFILE)

.PHONY: setup bench test smoke-check device-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# TensorFlow's CUDA build, for device-check.
$(VENV)/.installed-gpu: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,gpu]'
	touch $@

# Results go to a git-ignored folder; OUT=results/<profile> updates the committed ones.
bench: setup
	mkdir -p $(OUT)
	$(PY) -m pytest benchmarks --benchmark-only --fmbench-profile $(PROFILE) --fmbench-out $(OUT) \
		--benchmark-json $(OUT)/benchmark.json -p no:cacheprovider

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

# CI gate: a fresh smoke run in a scratch folder, checked against the committed reference.
smoke-check: setup
	out=$$(mktemp -d) && \
	$(PY) -m pytest benchmarks/test_matrix.py --benchmark-only --fmbench-profile smoke --fmbench-out $$out -q -p no:cacheprovider && \
	$(PY) -m fmbench check $$out --reference results/reference/smoke.json

# On a machine with an NVIDIA GPU (under 10 minutes): the tests, a smoke matrix that must show GPU utilisation
# and memory, and one standard-profile cell, into results/gpu-smoke/ with the GPU named. Without a GPU: exit 2.
device-check: $(VENV)/.installed-gpu
	PY=$(PY) bash scripts/device_check.sh

clean:
	rm -rf $(VENV) .benchmarks
