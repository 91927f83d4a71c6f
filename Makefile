# kerasbench: `make bench` runs the benchmarks on every backend; `make test` tests the harness.
PYTHON ?= python3
BACKENDS := tensorflow jax torch
PROFILE ?= quick
# DEVICE=gpu: the CUDA builds of every backend (constraints-gpu.txt, extra `gpu`) in their own venv, run with
# --device gpu. The CPU set's tensorflow-cpu and the GPU build's tensorflow cannot share one venv.
DEVICE ?= auto
ifeq ($(DEVICE),gpu)
VENV := .venv-gpu
CONSTRAINTS := constraints-gpu.txt
EXTRAS := gpu,report,dev
else
VENV := .venv
CONSTRAINTS := constraints.txt
EXTRAS := all
endif
BIN := $(VENV)/bin

# This project's machines keep the real reviews beside the checkout; elsewhere Keras downloads them.
IMDB_ARCHIVE := ../shared/data/aclImdb_v1_labeled.tar.gz
KERASBENCH_IMDB ?= $(if $(wildcard $(IMDB_ARCHIVE)),$(abspath $(IMDB_ARCHIVE)))
export KERASBENCH_IMDB

.PHONY: venv venv-gpu bench gpu-check test lint mutation report clean

venv: $(VENV)/.installed

# The pinned set (constraints.txt) is what CI tests and what the reference results used. uv installs it (about
# 45 s here, where pip took about 2 min); pip only puts uv itself into the new venv. The index and find-links of
# the user's pip configuration are passed to uv as flags (bench/index.py), since uv does not read pip's files.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set (this project's machines), a venv without
# .pyc files recompiles every import in every process (TensorFlow, JAX, torch and Keras: 17 s instead of 7 s).
UV_INDEX_ARGS = $$($(BIN)/python -c 'from bench import index; print(*index.from_pip_config().uv_args())')
$(VENV)/.installed: pyproject.toml constraints.txt $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) uv packaging
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(CONSTRAINTS) $(UV_INDEX_ARGS) -e '.[$(EXTRAS)]'
ifeq ($(DEVICE),gpu)
	@# A +cpu torch wheel on a configured index or find-links also satisfies torch==2.13.0: stop if one won.
	$(BIN)/python -c 'import sys, torch; sys.exit(0 if torch.version.cuda else "torch " + torch.__version__ + " is a CPU build: install torch==2.13.0 from PyPI (pip --isolated, or without find-links)")'
endif
	touch $@

# The GPU set in .venv-gpu (see constraints-gpu.txt): `make bench DEVICE=gpu` installs it too.
venv-gpu:
	$(MAKE) venv DEVICE=gpu

bench: venv
	$(BIN)/python -m bench run --profile $(PROFILE) --device $(DEVICE)

# The quick profile with --device gpu on every backend that sees a GPU, then kernels, device facts and energy.
# Where none does, it refuses (exit 2) saying how to install the GPU set; it needs no venv of its own.
GPU_CHECK_PYTHON = $(firstword $(wildcard .venv-gpu/bin/python .venv/bin/python) $(PYTHON))
gpu-check:
	$(GPU_CHECK_PYTHON) -m bench gpu-check --profile $(PROFILE)

# Backend-independent tests once (in three parts); tests marked per_backend under each backend, one process each
# (Keras fixes its backend at import); JOBS lanes (default 2), each pinned to its own CPUs (JOBS=1: one lane).
# `make lint` runs as one more suite, on whichever lane is free last.
test: venv
	PY=$(BIN)/python JOBS=$(or $(JOBS),2) bash tests/run_suites.sh

# The committed reference report: rebuilt only when asked, from the committed reference results.
report: venv
	$(BIN)/python -m bench report results/baseline --output results/REPORT.md --plots results/baseline

# ruff, and the import layers of pyproject.toml's [tool.importlinter] (no cycles, layers, frameworks kept in place).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Mutation testing of the decision code (pyproject.toml's [tool.mutmut]): one mutant at a time, so a 2-core
# machine keeps a core for other work; each mutant runs the unit tests that reach its function. Afterwards
# `$(BIN)/mutmut results` lists the survivors and `$(BIN)/mutmut show NAME` shows one; mutants/ holds the state.
mutation: venv
	KERAS_BACKEND=jax $(BIN)/mutmut run --max-children 1
	$(BIN)/mutmut export-cicd-stats

clean:
	rm -rf .venv .venv-gpu .pytest_cache .ruff_cache mutants
