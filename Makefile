# `make demo`: set up .venv if needed, then run the main job on the demo profile.
# `make test`: set up .venv if needed, then run the whole test suite (the end-to-end pipeline test included).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Jobs that Snakemake starts find the venv's python and snakemake first; dvc never phones home.
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: demo all test test-fast lint setup

setup: $(STAMP)

$(STAMP): envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores all results/table1.csv

# Every table, the figures and reports/paper_tables.md (Snakemake's default target).
all: $(STAMP)
	$(BIN)/snakemake --cores all

# One pytest worker per core (pytest-xdist), at most 4: each loads torch and may start training jobs, and more gain
# nothing once the two end-to-end builds run side by side. --dist loadfile keeps a module's tests, and so its
# fixtures (those builds), in one worker; --no-loadscope-reorder keeps the order tests/conftest.py gives the modules
# (longest first) instead of xdist's (most tests first, which put the two builds last).
PYTEST := $(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PYTEST)

# The quick loop: everything but the tests marked slow (pipeline runs, training subprocesses, benchmarks,
# SLURM dry runs).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/snakemake --lint
