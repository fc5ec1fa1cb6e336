# The README's commands. `make demo` and `make test` work on a bare machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench bench-warehouse scale docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cartrecovery demo

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

# Style, formatting and the one-way layers of docs/architecture.md (contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/ingest.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/adapters.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/delivery.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/calibration.py --write
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/models.py --write
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/dashboard.py

# Long (1,000,000 events: generation, dbt builds); not part of `make bench`.
bench-warehouse: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/warehouse.py

# The scale-out rehearsal (docs/scaling.md): a few minutes; figures in docs/BENCHMARKS.md.
scale: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/scale_out.py --write

# The API reference is generated from the OpenAPI document (tests/test_docs.py checks it).
docs: $(STAMP)
	$(BIN)/python -m ingest.openapi_docs > docs/api-reference.md

clean:
	rm -rf $(VENV) .cartrecovery dbt/target
