# Every target sets itself up: on a fresh machine with only python3, `make run` and `make test`
# create .venv, install the project and register its Jupyter kernel first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.wfo-installed
KERNEL := wfo_kit
# Two workers, a whole test file on one worker (module fixtures such as a live server stay shared);
# PYTEST_ARGS= for a serial run.
PYTEST_ARGS ?= -n 2 --dist loadfile
SERVE_ARGS ?=

.PHONY: setup run test lab bench lint clean serve bytecode

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,sql,serve,ops]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" >/dev/null
	@$(MAKE) --no-print-directory bytecode
	@touch $(STAMP)

# The package's bytecode, written once: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process (the CLI, each batch worker and kernel) would otherwise compile wfo_kit again (0.1 s of
# CPU each, measured). A file edited later is compiled again in memory, as always.
bytecode:
	@$(BIN)/python -m compileall -q wfo_kit >/dev/null

run: setup
	$(BIN)/wfo run parameters/default.yaml

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The API on the sample data (a copy the server may write submissions beside), on 127.0.0.1:8000.
# The first start adds an admin user and prints its token, once; later starts print no token.
serve: setup
	@mkdir -p outputs/serve-data
	@test -f outputs/serve-data/companies.csv || cp wfo_kit/sample_data/*.csv outputs/serve-data/
	$(BIN)/wfo serve --data-root outputs/serve-data --output outputs --first-admin admin $(SERVE_ARGS)

# JupyterLab at the project root (parameters/, outputs/ and docs/ reachable), showing notebooks/;
# no positional folder (it would override the root). Jupyter refuses root without --allow-root.
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(ALLOW_ROOT) $(LAB_ARGS)

bench: setup bytecode
	$(BIN)/python -m benchmarks

lint: setup
	$(BIN)/ruff check wfo_kit tests benchmarks notebooks
	$(BIN)/ruff format --check wfo_kit tests benchmarks notebooks

clean:
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
