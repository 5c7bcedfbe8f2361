# Two entry points: `make bench` (set up, run the benchmark on its default profile) and `make test`.
# Fashion-MNIST comes from FMBENCH_DATA_DIR when set, else Keras downloads it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick

.PHONY: setup bench test gate gate-run gate-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

bench: setup
	mkdir -p results/$(PROFILE)
	$(PY) -m pytest benchmarks --benchmark-only --fmbench-profile $(PROFILE) \
		--benchmark-json results/$(PROFILE)/benchmark.json -p no:cacheprovider

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

# The CI gate, called by .ci/run and .github/workflows/benchmarks.yml alike: a fresh smoke matrix in a scratch
# folder (never the committed results/), checked against results/reference/smoke.json. The check runs even when a
# cell failed (it names it); the gate fails when either did. CI splits the run: `make gate-run SHARD=K/N GATE_OUT=DIR`
# per shard job, then `make gate-check GATE_DIRS="DIR1 DIR2"` over every shard folder.
GATE_REFERENCE ?= results/reference/smoke.json
GATE_RUN = $(PY) -m pytest benchmarks/test_matrix.py --benchmark-only --fmbench-profile smoke -q -p no:cacheprovider \
	$(if $(SHARD),--fmbench-shard $(SHARD)) --fmbench-out
GATE_CHECK = $(PY) -m fmbench check --reference $(GATE_REFERENCE) $(GATE_CHECK_FLAGS)

gate: setup
	out=$${GATE_OUT:-$$(mktemp -d)}; $(GATE_RUN) "$$out"; run=$$?; $(GATE_CHECK) "$$out" && exit $$run

gate-run: setup
	@case "$(GATE_OUT)" in ""|results|results/*|./results*) echo "gate-run: set GATE_OUT to a scratch folder outside results/"; exit 2;; esac
	$(GATE_RUN) "$(GATE_OUT)"

gate-check: setup
	$(GATE_CHECK) $(GATE_DIRS)

clean:
	rm -rf $(VENV) .benchmarks
