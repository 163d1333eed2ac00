# policyloop: `make demo` runs the main job, `make test` every test. Both set up .venv/ first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install tools demo test lint unit integration kafka-up kafka-down bench schemas clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "policyloop needs Python >= 3.11, found " + sys.version' \
	  || { echo "Set PYTHON=python3.11 (or newer)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/policyloop demo --out demo-out

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/policyloop schemas export --check

tools:
	@bash deploy/tools.sh

unit: install tools
	$(BIN)/pytest tests --ignore=tests/integration

integration: install
	@bash deploy/kafka.sh up
	@status=0; $(BIN)/pytest tests/integration || status=$$?; bash deploy/kafka.sh down; exit $$status

test: lint unit integration

kafka-up:
	bash deploy/kafka.sh up

kafka-down:
	bash deploy/kafka.sh down

schemas: install
	$(BIN)/policyloop schemas export

bench: install
	@bash deploy/kafka.sh up
	@status=0; $(BIN)/python -m streams.bench || status=$$?; bash deploy/kafka.sh down; exit $$status

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
