# The README's two commands are `make demo` and `make test`; both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(if $(FLYWHEEL_DATA),$(FLYWHEEL_DATA),data)
export FLYWHEEL_DATA := $(abspath $(DATA))
export DAGSTER_HOME := $(FLYWHEEL_DATA)/dagster
STAMP := $(VENV)/.installed

.PHONY: setup demo test ui bench clean-data

setup: $(STAMP)

# Re-installs only when the project's metadata changes, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first (a local wheel here); sentence-transformers would otherwise pull a CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flywheel demo run

# Two workers (one per core), a test file's tests on one worker so its module fixtures are built once,
# the slowest files first (flywheel_tests/conftest.py); torch one thread per worker, or two workers'
# thread pools fight over the two cores. Then the tests that time themselves, alone.
# A subset: $(BIN)/python -m pytest flywheel_tests/test_sources.py
test: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not solo"
	$(BIN)/python -m pytest -q -m solo

# The Dagster UI (lineage, runs, schedules) and the review app side by side; Ctrl-C stops both.
ui: setup $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI:  http://127.0.0.1:3000/"
	@echo "Review app:  http://127.0.0.1:8765/  (reviewers: $(BIN)/flywheel users add NAME [--admin])"
	@SERVE=; if [ -e $(FLYWHEEL_DATA)/flywheel.duckdb ] || [ -n "$$FLYWHEEL_WAREHOUSE" ]; then $(BIN)/flywheel serve --port 8765 & SERVE=$$!; \
	  else echo "(the review app starts once the warehouse exists: make demo, or flywheel ingest)"; fi; \
	  trap '[ -z "$$SERVE" ] || kill $$SERVE 2>/dev/null' EXIT; \
	  $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: setup
	$(BIN)/python benchmarks/sampling.py
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/review.py
	$(BIN)/python benchmarks/sources.py
	$(BIN)/python benchmarks/assist.py

clean-data:
	rm -rf $(FLYWHEEL_DATA)/flywheel.duckdb $(FLYWHEEL_DATA)/inbox $(FLYWHEEL_DATA)/demo $(FLYWHEEL_DATA)/dagster $(FLYWHEEL_DATA)/exports
