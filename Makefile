# kerasbench: `make bench` runs the benchmarks on every backend; `make test` tests the harness.
PYTHON ?= python3
BACKENDS := tensorflow jax torch
PROFILE ?= quick
# DEVICE=gpu: the CUDA builds, one venv per CUDA major (TensorFlow 2.21 is built for CUDA 12, JAX's CUDA 13 plugin
# and PyPI's torch 2.13 for CUDA 13, and the two majors' cuDNN and NCCL wheels write the same files):
# .venv-gpu-tf (constraints-gpu-tf.txt, extra `gpu-tf`) runs TensorFlow, .venv-gpu (constraints-gpu-jax-torch.txt,
# extra `gpu-jax-torch`) runs JAX and torch and the command itself, with --device gpu. The CPU set's tensorflow-cpu
# and the GPU build's tensorflow cannot share one venv either.
DEVICE ?= auto
ifeq ($(DEVICE),gpu)
VENV := .venv-gpu
GPU_PYTHONS := --python tensorflow=.venv-gpu-tf/bin/python --python jax=.venv-gpu/bin/python \
	--python torch=.venv-gpu/bin/python
else
VENV := .venv
GPU_PYTHONS :=
endif
BIN := $(VENV)/bin
# Each venv's constraints file and extras.
CONSTRAINTS.venv := constraints.txt
EXTRAS.venv := all
CONSTRAINTS.venv-gpu-tf := constraints-gpu-tf.txt
EXTRAS.venv-gpu-tf := gpu-tf,report,dev
CONSTRAINTS.venv-gpu := constraints-gpu-jax-torch.txt
EXTRAS.venv-gpu := gpu-jax-torch,report,dev
# The backends a GPU venv must load its own CUDA major's cuDNN and NCCL for (python -m bench cuda-libs).
BACKENDS.venv-gpu-tf := tensorflow
BACKENDS.venv-gpu := jax,torch

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
# A GPU venv is complete only once `python -m bench cuda-libs` saw each of its backends load its own CUDA major's
# cuDNN and NCCL (from /proc/self/maps; no GPU needed): it refuses a CPU build, or the other major's libraries.
# $(call venv_rule,NAME): the rule for venv .NAME, from CONSTRAINTS.NAME, EXTRAS.NAME and BACKENDS.NAME.
define venv_rule
.$(1)/.installed: pyproject.toml constraints.txt $$(CONSTRAINTS.$(1))
	$$(PYTHON) -m venv .$(1)
	.$(1)/bin/python -m pip install -q -c $$(CONSTRAINTS.$(1)) uv packaging
	.$(1)/bin/uv pip install -q --compile-bytecode --python .$(1)/bin/python -c $$(CONSTRAINTS.$(1)) \
		$$$$(.$(1)/bin/python -c 'from bench import index; print(*index.from_pip_config().uv_args())') \
		-e '.[$$(EXTRAS.$(1))]'
	$$(if $$(BACKENDS.$(1)),.$(1)/bin/python -m bench cuda-libs --backends $$(BACKENDS.$(1)))
	touch $$@
endef
$(foreach name,venv venv-gpu-tf venv-gpu,$(eval $(call venv_rule,$(name))))

# The GPU set, both venvs (see constraints-gpu-tf.txt and constraints-gpu-jax-torch.txt): `make bench DEVICE=gpu`
# installs them too.
venv-gpu: .venv-gpu-tf/.installed .venv-gpu/.installed

bench: $(if $(GPU_PYTHONS),venv-gpu,venv)
	$(BIN)/python -m bench run --profile $(PROFILE) --device $(DEVICE) $(GPU_PYTHONS)

# The quick profile with --device gpu on every backend that sees a GPU, then kernels, device facts and energy.
# Each backend is asked in its GPU venv where that venv exists (its libraries checked first, as after install),
# else in .venv; where none sees a GPU, it refuses (exit 2) saying how to install the GPU set.
GPU_CHECK_PYTHON = $(firstword $(wildcard .venv-gpu/bin/python .venv/bin/python) $(PYTHON))
GPU_CHECK_PYTHONS = $(foreach pair,tensorflow=.venv-gpu-tf jax=.venv-gpu torch=.venv-gpu,$(if \
	$(wildcard $(word 2,$(subst =, ,$(pair)))/bin/python),--python $(pair)/bin/python))
gpu-check:
	$(GPU_CHECK_PYTHON) -m bench gpu-check --profile $(PROFILE) $(GPU_CHECK_PYTHONS)

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
	rm -rf .venv .venv-gpu .venv-gpu-tf .pytest_cache .ruff_cache mutants
