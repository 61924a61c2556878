# keybuzz: `make up` deploys the lab, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test lint unit venv lock clean

# Every Python package comes from requirements.lock, pinned with its hashes (what CI tested, byte for byte);
# keybuzz itself is then installed without dependencies or build isolation (nothing unlocked is fetched).
$(STAMP): pyproject.toml requirements.lock scripts/setup-machine.sh
	bash scripts/setup-machine.sh
	/usr/bin/python3 -m venv $(VENV) || { echo "make: creating $(VENV) failed; fix: apt-get install -y python3-venv, then make venv" >&2; exit 1; }
	$(PY) -m pip install -q --require-hashes -r requirements.lock \
	  && $(PY) -m pip install -q --no-deps --no-build-isolation -e . \
	  || { echo "make: pip install into $(VENV) failed (see above: PyPI unreachable? a hash mismatch?); fix the cause, then make venv" >&2; exit 1; }
	touch $(STAMP)

venv: $(STAMP)

# After editing pyproject.toml's dependencies: `make lock`, then `make venv` installs the new lock.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --no-header --quiet -o requirements.lock

up: $(STAMP)
	bash scripts/up.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

# The lab images (Debian packages: minutes on a new machine, nothing once built) build while the unit tests
# run; a failed build is shown and the lab tests then say what is missing. The lab tests run on LAB_WORKERS
# labs at once, one test file wholly on one lab (their time is mostly waits for failovers, not CPU).
LAB_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/keybuzz lab images > $(VENV)/lab-images.log 2>&1 & images=$$!; \
	  $(VENV)/bin/pytest -q tests/unit; unit=$$?; \
	  wait $$images || { echo "make: building the lab images failed:"; tail -n 30 $(VENV)/lab-images.log; }; \
	  [ $$unit -eq 0 ] || exit $$unit; \
	  $(VENV)/bin/pytest -q -n $(LAB_WORKERS) --dist loadfile --durations=30 tests/lab

clean:
	rm -rf $(VENV) build *.egg-info
