# The two entry points: `make demo` and `make test`. Both create the virtual environment when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

.PHONY: demo test venv clean-results

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: venv
	@[ -d .dvc ] || $(BIN)/dvc init --quiet
	$(BIN)/esa compile specs/phase1.yaml
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	$(BIN)/esa report phase1

test: venv
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

clean-results:
	rm -rf results reports/_site
