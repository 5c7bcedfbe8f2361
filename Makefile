# Two entry points: `make bench` (set up, run the benchmark on its default profile) and `make test`.
# Fashion-MNIST comes from FMBENCH_DATA_DIR when set, else Keras downloads it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# Where `make bench` writes: `make bench OUT=results/quick` sets it, an OUT in the environment does not.
OUT = results/local/$(PROFILE)

.PHONY: setup bench test test-jax lint gate gate-cells gate-run gate-check device-check replay clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,tensorflow,jax]'
	touch $@

setup: $(VENV)/.installed

# The GPU machines lent to this project have Python 3.12 with JAX (CUDA) but no TensorFlow, Keras, keras-tuner or
# Optuna, and no network: `make device-bundle`, here, writes device-bundle/ (git-ignored; the wheels they lack and
# Fashion-MNIST, under 60 MiB), which travels with the working tree to run `make device-check` there.
DEVICE_BUNDLE ?= device-bundle
DEVICE_PYTHON_VERSION ?= 3.12
.PHONY: device-bundle device-check-dry-run
device-bundle: setup
	$(PY) scripts/prepare_device_bundle.py --out $(DEVICE_BUNDLE) --python-version $(DEVICE_PYTHON_VERSION)

# Results go to a git-ignored folder; OUT=results/<profile> updates the committed ones.
# Each run also joins its profile's history (per machine and commit; `fmbench history` draws it), ignored by git.
HISTORY = results/local/history/$(PROFILE)
bench: setup
	mkdir -p $(OUT)
	$(PY) -m pytest benchmarks --benchmark-only --fmbench-profile $(PROFILE) --fmbench-out $(OUT) \
		--benchmark-json $(OUT)/benchmark.json -p no:cacheprovider; status=$$?; \
	$(PY) -m fmbench history $(HISTORY) --add $(OUT) || echo "bench: this run was not added to $(HISTORY)"; \
	exit $$status

# The replay profile (docs/replay.md): 200 seeds of each tuner with every fit looked up in results/replay-table, two
# cells at a time (a replayed cell trains nothing, and its clock is the table's, not this machine's); into
# REPLAY_OUT. `make gate GATE_PROFILE=replay-gate` is the gate's replay tier.
REPLAY_OUT ?= results/local/replay
replay: setup
	$(PY) -m pytest benchmarks/test_matrix.py --fmbench-profile replay -n 2 -q -p no:cacheprovider \
		--fmbench-out $(REPLAY_OUT)

# Lint and format check first (seconds), then two test processes (pytest-xdist): the e2e tests train tiny models
# that keep one core busy; `pytest tests -m "not e2e"` trains nothing (tests/conftest.py refuses it), in about 2 min.
test: setup lint
	$(PY) -m pytest tests -q -p no:cacheprovider -n 2

# The tests whose answers depend on the Keras backend (training, scoring, the protocol, the suite end to end), on
# the backend `make test` does not use: JAX, which the standard, full and cnn profiles run on.
test-jax: setup
	KERAS_BACKEND=jax $(PY) -m pytest tests/test_training.py tests/test_scoring.py tests/test_backend.py \
		tests/test_protocol.py tests/test_e2e.py tests/test_benchmark_suite.py -q -p no:cacheprovider -n 2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The CI gate, called by .ci/run and .github/workflows/benchmarks.yml alike: a fresh matrix of GATE_PROFILE's cells
# in a scratch folder (never the committed results/), checked against results/reference/<profile>.json. The check
# runs even when a cell failed (it names it); the gate fails when either did. CI splits the run: `make gate-run
# SHARD=K/N GATE_OUT=DIR` per shard job, then `make gate-check GATE_DIRS="DIR1 DIR2"` over every shard folder.
# The gate profile (docs/gate.md, "The design for power"): 96 untimed cells against a reference of 4 repeats.
GATE_PROFILE ?= gate
GATE_REFERENCE ?= results/reference/$(GATE_PROFILE).json
# The gate's cells (a pytest -k expression): on smoke, all but Optuna's six time-limited ones, which would add two
# thirds of the time-limited half's minutes to CI; Optuna's trial- and epoch-budget cells are in. Other profiles:
# every cell.
GATE_CELLS = $(if $(filter smoke,$(GATE_PROFILE)),not (tpe and time),baseline or not baseline)
# GATE_SEEDS (e.g. 1-100) runs and judges only those of the profile's seeds: CI's replay tier (docs/gate.md).
GATE_PYTEST = $(PY) -m pytest benchmarks/test_matrix.py --fmbench-profile $(GATE_PROFILE) -q -p no:cacheprovider \
	$(if $(SHARD),--fmbench-shard $(SHARD)) $(if $(GATE_SEEDS),--fmbench-seeds $(GATE_SEEDS))
GATE_RUN = $(GATE_PYTEST) --benchmark-only --fmbench-out
# A noise model measured against a single-run reference (smoke's): no test assumes less spread than real harmless
# runs showed. A reference made of repeats (`fmbench calibrate reference`, gate's) carries its own measured noise
# instead; the fresh runs that count its false alarms must never become its floors (results/gate/, not noise/).
GATE_NOISE ?= $(wildcard results/noise/$(GATE_PROFILE).json)
GATE_CHECK = $(PY) -m fmbench check --reference $(GATE_REFERENCE) $(if $(GATE_NOISE),--noise $(GATE_NOISE)) \
	$(if $(GATE_SEEDS),--seeds $(GATE_SEEDS)) $(GATE_CHECK_FLAGS)
# Every local gate run joins the gate's history (the committed smoke one: GATE_PROFILE=smoke
# GATE_HISTORY=results/history/smoke-gate); a run the history refuses (a commit it already holds) still passes or
# fails on its check alone.
GATE_HISTORY ?= results/local/history/$(GATE_PROFILE)-gate
# The history judges its steps with the gate's floors where the reference measured them (its repeats' noise_sd).
GATE_HISTORY_NOISE = $(if $(shell grep -qs '"noise_sd"' $(GATE_REFERENCE) && echo yes),--noise-from $(GATE_REFERENCE))

# On one machine, `make gate` runs the cells without a time limit two at a time: their accuracy does not depend
# on the machine's speed, and these small models leave a core idle (pytest-benchmark times nothing under xdist, so
# that half runs without --benchmark-only). The time-limited cells (budget labels with "time") then run alone,
# as the reference's were run, into the same folder (--fmbench-resume keeps the first rows); a profile without
# any (pytest's exit 5: nothing selected) skips that half. `make gate-cells GATE_OUT=DIR` runs them so, unchecked
# (scripts/planted_run.sh, whose patched code must not judge itself).
GATE_CELLS_INTO_OUT = $(GATE_PYTEST) -n 2 -k "($(GATE_CELLS)) and not time" --fmbench-out "$$out"; untimed=$$?; \
	$(GATE_RUN) "$$out" -k "($(GATE_CELLS)) and time" --fmbench-resume; timed=$$?; [ $$timed -ne 5 ] || timed=0
gate: setup
	out=$${GATE_OUT:-$$(mktemp -d)}; $(GATE_CELLS_INTO_OUT); \
	$(GATE_CHECK) "$$out"; checked=$$?; \
	$(PY) -m fmbench history $(GATE_HISTORY) $(GATE_HISTORY_NOISE) --add "$$out" || echo "gate: this run was not added to $(GATE_HISTORY)"; \
	exit $$((checked || untimed || timed))

# gate-run and gate-cells write only into a scratch folder, never the committed results/.
GATE_OUT_SCRATCH = case "$(GATE_OUT)" in ""|results|results/*|./results*) \
	echo "$@: set GATE_OUT to a scratch folder outside results/"; exit 2;; esac
gate-run: setup
	@$(GATE_OUT_SCRATCH)
	$(GATE_RUN) "$(GATE_OUT)" -k "$(GATE_CELLS)"

gate-cells: setup
	@$(GATE_OUT_SCRATCH)
	out="$(GATE_OUT)"; $(GATE_CELLS_INTO_OUT); exit $$((untimed || timed))

gate-check: setup
	$(GATE_CHECK) $(GATE_DIRS)

# On a GPU machine, with the machine's python3 (it needs no .venv, and nothing from an index), within 9 minutes: the
# bundle installed offline, seed 1 of the standard and cnn profiles' baseline and 100-epoch cells on JAX, every row
# checked for GPU utilisation and memory, then the unit tests on JAX; into results/gpu/ with the GPU named,
# resumable. Without a GPU: exit 2.
device-check:
	BUNDLE=$(DEVICE_BUNDLE) bash scripts/device_check.sh

# The same offline install, rehearsed here on the CPU (about a minute): a bundle for this Python, stand-ins for the
# packages the GPU machine has (JAX, numpy, pytest, ...; never in the bundle), a fresh venv without TensorFlow and,
# where `unshare -n` works, without a network, then a two-trial JAX search on the bundle's data.
DRY_RUN_DIR ?= /tmp/fmbench-device-dry-run
device-check-dry-run: setup
	$(PY) scripts/prepare_device_bundle.py --out $(DRY_RUN_DIR)/bundle --stand-ins $(DRY_RUN_DIR)/stand-ins \
		--python-version $$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	BUNDLE=$(DRY_RUN_DIR)/bundle STAND_INS=$(DRY_RUN_DIR)/stand-ins PY=$(PYTHON) \
		$$(unshare -n true 2>/dev/null && echo unshare -n) bash scripts/device_check.sh --dry-run $(DRY_RUN_DIR)/out

clean:
	rm -rf $(VENV) .benchmarks
