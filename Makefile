# One-command setup: `make scan` (scan a generated demo tree, or PATHS="...") and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PATHS ?=
DEMO := demo
SCAN_ARGS ?= -j 2

.PHONY: setup scan demo test lint pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ui]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/python tests/fixtures/generate.py demo $(DEMO)

# Scanning the demo tree finds the planted files, so exit code 1 is the expected outcome there.
scan: $(STAMP)
ifeq ($(strip $(PATHS)),)
	@$(MAKE) --no-print-directory demo
	@$(BIN)/batchscan scan $(DEMO) $(SCAN_ARGS); status=$$?; \
	  echo "batchscan exit code $$status (1 = findings: expected for the demo tree)"; \
	  [ $$status -le 1 ]
else
	$(BIN)/batchscan scan $(PATHS) $(SCAN_ARGS)
endif

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest

# The registry-scale comparison (writes bench-data/; torch is needed to write checkpoints).
# Add PEERS=--with-peers to install and time picklescan, modelscan and ModelAudit too.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fixtures]'
	$(BIN)/python benchmarks/compare.py small $(PEERS)

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
