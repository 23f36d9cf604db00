# One entry for people and CI. Every target creates the virtual environment first,
# so `make report` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
ARGS ?=

.PHONY: setup report book test unit lint clean

$(BIN)/srkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(BIN)/srkit  ## create .venv and install srkit with its dependencies

report: setup  ## execute every step notebook and build the book (PROFILE=smoke|quick|full)
	$(BIN)/srkit run --profile $(PROFILE) $(ARGS)

book: setup  ## rebuild the book from the notebooks already executed
	$(BIN)/srkit book

test: setup  ## lint, unit tests, then the smoke run and strict book build end to end
	$(BIN)/ruff check srkit tests notebooks
	$(BIN)/ruff format --check srkit tests notebooks
	$(BIN)/python -m pytest -ra

unit: setup  ## unit tests only (skips the end-to-end smoke run)
	$(BIN)/python -m pytest -ra -m "not slow"

lint: setup
	$(BIN)/ruff format srkit tests notebooks
	$(BIN)/ruff check --fix srkit tests notebooks

clean:
	-$(BIN)/srkit clean
