# Two commands for a fresh machine: `make run` and `make test`.
#   make run    - .venv, Rust + Cython extensions, then stalwart-master on its embedded default
#   make test   - the same build, the test peers (apt/pip), then the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
RUST_SRC := $(shell find ext/src -name '*.rs') ext/Cargo.toml
PYX_SRC := $(shell find stalwart -name '*.pyx' -o -name '*.pxd')
PYTEST_ARGS ?=

.PHONY: all build run test test-unit peers bench clean cargo-test

all: build

$(VENV)/.stamp-venv: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q 'maturin>=1.5,<2' 'Cython>=3.0' 'setuptools>=68' wheel
	touch $@

$(VENV)/.stamp-native: $(VENV)/.stamp-venv $(RUST_SRC) pyproject.toml
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/maturin develop --release --extras test -q
	touch $@

$(VENV)/.stamp-cython: $(VENV)/.stamp-native $(PYX_SRC) setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@

build: $(VENV)/.stamp-cython

run: build
	$(BIN)/stalwart-master

peers: build
	bash tests/install-peers.sh

test: build peers cargo-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: build
	$(PY) -m pytest -q tests/unit tests/protocol $(PYTEST_ARGS)

cargo-test:
	cd ext && cargo test -q --lib

bench: build
	$(PY) -m bench

clean:
	rm -rf $(VENV) build ext/target stalwart/*.so
	find stalwart -name '*.so' -delete
	find stalwart -name '*.c' -path '*stalwart*' -newer setup.py -delete
