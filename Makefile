# azsnap — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  := .tools

.PHONY: demo test lint typecheck unit e2e helm clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TOOLS)/helm: | $(BIN)/python
	bash .ci/fetch-helm $(TOOLS)

demo: $(STAMP)
	$(BIN)/azsnap demo

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench

typecheck: $(STAMP)
	$(BIN)/mypy operator

test: $(STAMP) $(TOOLS)/helm lint typecheck
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
