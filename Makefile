# `make demo` and `make test` are the two commands in the README; each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/labelgen demo

lint: $(BIN)/.installed
	$(BIN)/ruff check labelgen tests scripts notebooks
	$(BIN)/ruff format --check labelgen tests scripts

test: $(BIN)/.installed lint
	WANDB_MODE=disabled HF_HUB_OFFLINE=1 $(BIN)/pytest -n 2 -q
