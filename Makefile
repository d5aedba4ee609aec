# The two commands the README documents; each does all set-up on a fresh machine.
#   make run    -> creates .venv, installs collabflow, runs the nightly flow once (ARGS="..." passes options)
#   make test   -> creates .venv, installs collabflow with test extras, runs the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel; set TORCH="torch" (or a CUDA build's spec) on a GPU machine. An installed torch is kept.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test lint bench clean

install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: install
	$(BIN)/collabflow run $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ml100k.py

clean:
	rm -rf $(VENV) warehouse *.egg-info
