# `make demo` and `make test` each build .venv on first use (pinned by constraints.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Two test workers (CI's machine has 2 cores; JAX compilation is mostly single-threaded), and
# the slowest tests listed so the suite's time stays visible.
PYTEST_ARGS ?= -n 2 --dist worksteal --durations=30

.PHONY: demo test lint format bench bench-publish bench-cnf bench-device clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench,data]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jgen train realnvp_2d:moons --workdir runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/flows.py
	$(PY) benchmarks/cnf_step.py

# Every must-show benchmark table, with the load checked (benchmarks/publish.py, ~10 min on an
# idle 2-core machine): JSON records and SUMMARY.md in benchmarks/results/. Needs the torch peers.
bench-publish: $(STAMP)
	$(PY) -c "import torch, torchdiffeq, zuko, nflows" 2>/dev/null || \
		$(PY) -m pip install --quiet -c constraints.txt -e '.[torch]'
	$(PY) benchmarks/publish.py

# The CNF solver x tolerance x adjoint x trace-estimator grid (benchmarks/cnf_solvers.py).
bench-cnf: $(STAMP)
	$(PY) benchmarks/cnf_solvers.py

# Every family's train step and the peers on whatever backend JAX finds (GPU/TPU/CPU), with a
# profile of the FFJORD step; under 8 minutes on one H100 (benchmarks/accelerator.py --budget).
bench-device: $(STAMP)
	$(PY) benchmarks/accelerator.py --profile benchmarks/results/profile-$$($(PY) -c 'import jax; print(jax.default_backend())')

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
