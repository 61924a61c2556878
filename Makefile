# keybuzz: `make up` deploys the lab, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test lint unit venv clean

$(STAMP): pyproject.toml scripts/setup-machine.sh
	bash scripts/setup-machine.sh
	/usr/bin/python3 -m venv $(VENV) || { echo "make: creating $(VENV) failed; fix: apt-get install -y python3-venv, then make venv" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev]' \
	  || { echo "make: pip install into $(VENV) failed (see above: PyPI unreachable?); fix the cause, then make venv" >&2; exit 1; }
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
