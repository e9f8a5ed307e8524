# The README's commands. CI (.ci/run) calls these same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-faults test-all demo bench

# Fresh machine -> working install. CPU torch 2.13.0 first, so that no dependency pulls a CUDA build.
setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install --no-deps musicnn==0.1.0
	$(BIN)/pip install -e '.[dev]'

# Lint (ruff, pinned in the dev extra), then the default suite (PostgreSQL tests included; they skip with a reason when no server answers,
# and fail instead when ARTDB_REQUIRE_POSTGRES=1, as in CI).
test:
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

# The long fault cases (every kill point, both back-ends, a Dask worker killed mid-run; ~8-15 min on
# 2 cores). CI runs them too.
test-faults:
	$(BIN)/python -m pytest -n 2 --dist loadfile -m slow tests/test_faults.py tests/test_concurrent_writers.py \
		tests/test_hostile_run.py tests/test_dask.py

test-all:
	$(BIN)/python -m pytest -n 2 --dist loadfile

demo:
	$(BIN)/artdb demo

bench:
	$(BIN)/python bench/ingest_metadata.py
