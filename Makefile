# Two commands: `make run` (install + start the chatbot) and `make test` (install + whole test suite).
# Installs are stamped against pyproject.toml, so re-running either is fast and idempotent.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1

.PHONY: run test lint bench eval clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, from the CPU wheel on local disk, so no dependency can drag in a CUDA build.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[local]' torch==2.13.0
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run
	$(BIN)/pip install --quiet -e '.[local,dev]' torch==2.13.0
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/tongwen serve

test: $(VENV)/.installed-test
	bash scripts/ensure-browser.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run

eval: $(VENV)/.installed-run
	$(BIN)/tongwen eval
