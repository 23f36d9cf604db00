# One entry for people and CI. Every target creates the virtual environment first,
# so `make report` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= default
ARGS ?=
REMOTE ?= origin
SITE := _build/html

.PHONY: setup report book test unit test-jax lint publish clean

$(BIN)/srkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(BIN)/srkit  ## create .venv and install srkit with its dependencies

report: setup  ## execute every step notebook and build the book (PROFILE=default|quick|full|smoke)
	$(BIN)/srkit run --profile $(PROFILE) $(ARGS)

book: setup  ## rebuild the book from the notebooks already executed
	$(BIN)/srkit book

test: setup  ## lint, unit tests, then the smoke run and strict book build end to end
	$(BIN)/ruff check srkit tests notebooks
	$(BIN)/ruff format --check srkit tests notebooks
	$(BIN)/python -m pytest -ra

unit: setup  ## unit tests only (skips the end-to-end smoke run)
	$(BIN)/python -m pytest -ra -m "not slow"

# JAX beside TensorFlow in the same .venv; KERAS_BACKEND picks one per command.
$(VENV)/.jax: $(BIN)/srkit
	$(BIN)/python -m pip install --quiet -e ".[dev,jax]"
	@touch $@

test-jax: $(VENV)/.jax  ## unit tests, then step 02 of the smoke profile, on JAX
	KERAS_BACKEND=jax $(BIN)/python -m pytest -ra -m "not slow"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	mkdir "$$tmp/book" && cp _config.yml _toc.yml "$$tmp/" && \
	cp -r notebooks "$$tmp/" && cp book/*.md "$$tmp/book/" && \
	rm -f "$$tmp/book/about_run.md" && \
	KERAS_BACKEND=jax $(BIN)/srkit run --project "$$tmp" --profile smoke \
	   --only 02 --no-book --run-dir "$$tmp/run" && \
	grep -q '"keras backend": "jax"' "$$tmp/run/run.json"

lint: setup
	$(BIN)/ruff format srkit tests notebooks
	$(BIN)/ruff check --fix srkit tests notebooks

publish: setup  ## push the built site (_build/html) to the gh-pages branch of REMOTE
	@test -f $(SITE)/index.html || { \
		echo "publish: $(SITE)/index.html does not exist; build the book first" \
		     "(make report, or make book after a run)" >&2; exit 1; }
	$(BIN)/ghp-import -n -p -f -r $(REMOTE) -b gh-pages $(SITE)

clean:
	-$(BIN)/srkit clean
