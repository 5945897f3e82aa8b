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

# The suite runs on every core (pytest-xdist; `make test PYTEST_WORKERS=0` runs it in one process), each test file
# on one worker so that module fixtures are made once. Bytecode caches are written even where the environment says
# not to (PYTHONDONTWRITEBYTECODE): without them every test process, and every azsnap process a test starts,
# compiles the sources again.
PYTEST_WORKERS ?= auto

test: $(STAMP) $(TOOLS)/helm lint typecheck
	PATH="$(CURDIR)/$(TOOLS):$$PATH" env -u PYTHONDONTWRITEBYTECODE \
		$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
