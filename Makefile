# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all venv test demo verify diagrams schemas bench lint clean

all: test

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "interlock needs Python 3.11 or newer on PATH" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

demo: $(STAMP)
	$(PY) examples/demo.py

verify: $(STAMP)
	$(VENV)/bin/interlock verify
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest -q -n 2 -p no:cacheprovider tests/property
	INTERLOCK_FULL_SWEEP=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_crash_sweep.py

diagrams: $(STAMP)
	$(PY) -m interlock.adapters.generate

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
