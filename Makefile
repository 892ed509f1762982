# The two commands of the README: `make demo` and `make test`. Both set up what
# is missing first (Debian packages, the virtualenv), idempotently.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test lint bench clean

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check podkit tests bench

bench: setup
	$(PY) bench/pull.py
	$(PY) bench/run.py
	$(PY) bench/pods.py

clean:
	rm -rf $(VENV) build *.egg-info
