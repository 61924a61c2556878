# keybuzz: `make up` deploys the lab, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test lint unit deps venv clean

$(STAMP): pyproject.toml
	bash scripts/setup-machine.sh
	/usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	bash scripts/up.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
