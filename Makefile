# Every target sets itself up: on a fresh machine with only python3, `make run` and `make test`
# create .venv, install the project and register its Jupyter kernel first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.wfo-installed
KERNEL := wfo_kit
PYTEST_ARGS ?=

.PHONY: setup run test lab bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,sql,serve,ops]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" >/dev/null
	@touch $(STAMP)

run: setup
	$(BIN)/wfo run parameters/default.yaml

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=. notebooks/

bench: setup
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check wfo_kit tests benchmarks notebooks
	$(BIN)/ruff format --check wfo_kit tests benchmarks notebooks

clean:
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
