# kerasbench: `make bench` runs the benchmarks on every backend; `make test` tests the harness.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BACKENDS := tensorflow jax torch
PROFILE ?= quick

# This project's machines keep the real reviews beside the checkout; elsewhere Keras downloads them.
IMDB_ARCHIVE := ../shared/data/aclImdb_v1_labeled.tar.gz
KERASBENCH_IMDB ?= $(if $(wildcard $(IMDB_ARCHIVE)),$(abspath $(IMDB_ARCHIVE)))
export KERASBENCH_IMDB

.PHONY: venv bench test lint report clean

venv: $(VENV)/.installed

# The pinned set (constraints.txt) is what CI tests and what the reference results used.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	touch $@

bench: venv
	$(BIN)/python -m bench run --profile $(PROFILE)

# One process per backend: Keras fixes its backend at import.
test: venv lint
	@status=0; for b in $(BACKENDS); do \
		echo "=== tests under KERAS_BACKEND=$$b"; \
		KERAS_BACKEND=$$b $(BIN)/python -m pytest tests -q || status=1; \
	done; exit $$status

# The committed reference report: rebuilt only when asked, from the committed reference results.
report: venv
	$(BIN)/python -m bench report results/baseline --output results/REPORT.md --plots results/baseline

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
