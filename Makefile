# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# The CPU build of PyTorch unless an NVIDIA GPU is present (override: make install TORCH=...).
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo "torch" || echo "torch==2.13.0")
PYTEST_ARGS ?=
# Tests run in a shuffled order (pytest-randomly); pytest prints the seed on its first lines
# ("Using --randomly-seed=N"). Replay that order with `make test SEED=N`; `SEED=none` runs in file order.
SEED ?=
ORDER_ARGS := $(if $(SEED),$(if $(filter none,$(SEED)),-p no:randomly,-p randomly --randomly-seed=$(SEED)))
# `cortex export --gptq` (cortex/export/gptq.py): llmcompressor's GPTQ and compressed-tensors' format. Installed
# with --no-deps because llmcompressor 0.14.0.1 pins transformers<=5.17 (this project needs >=5.23) and pulls
# auto-round and nvidia-ml-py, none of which its GPTQ path imports; with transformers 5.25 it calibrates, saves and
# loads back on a CPU (tests/export/test_export_gptq.py). Its other requirements are already core requirements.
GPTQ_STAMP := $(VENV)/.gptq
GPTQ_LIBS  := llmcompressor==0.14.0.1 compressed-tensors==0.19.0 loguru>=0.7.2

.PHONY: install test test-fast demo bench clean

install: $(STAMP) $(GPTQ_STAMP)

$(STAMP): setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[test]"
	touch $(STAMP)

$(GPTQ_STAMP): $(STAMP) Makefile
	$(PIP) install --no-deps $(foreach p,$(GPTQ_LIBS),"$(p)")
	touch $(GPTQ_STAMP)

test: install
	$(PY) -m pytest $(ORDER_ARGS) $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(ORDER_ARGS) $(PYTEST_ARGS)

# The offline local subnet (docs/localnet.md): 4 miners, 2 validators, the averager, 2 rounds.
demo: install
	$(VENV)/bin/cortex localnet

bench: install
	$(PY) bench/yuma.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
