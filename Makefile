# The two commands a newcomer runs are `make demo` and `make test`; each sets up .venv and the
# llama.cpp toolchain first, and does nothing twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NIGHTSHIFT_HOME ?= $(HOME)/.nightshift
# No mtmd (multimodal) library: nightshift serves text models only, and it saves build time.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv toolchain demo test bench doctor ui lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing nightshift into $(VENV); llama-cpp-python compiles from source the first time (about 7 minutes on 2 cores)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

toolchain: venv
	$(BIN)/nightshift toolchain build

demo: toolchain
	$(BIN)/nightshift demo

test: toolchain
	@scripts/ensure-chromium.sh
	$(BIN)/python -m pytest

doctor: toolchain
	$(BIN)/nightshift doctor

ui: toolchain
	$(BIN)/nightshift ui

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache

bench: toolchain
	$(BIN)/python -m benchmarks.run --out bench-results.json
