# The two commands of the README: `make demo` and `make test`. Both set up what
# is missing first (Debian packages, the virtualenv), idempotently.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Python sources the format and lint checks cover (ruff would also format docs' code blocks).
PYSRC := podkit tests bench

.PHONY: setup demo test check lint bench clean

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	$(PY) -m pytest -q tests

# One check command: formatting, lint, and strict typing of podkit/ (config in pyproject.toml).
check: setup
	$(VENV)/bin/ruff format --check $(PYSRC)
	$(VENV)/bin/ruff check $(PYSRC)
	$(VENV)/bin/mypy

lint: setup
	$(VENV)/bin/ruff check $(PYSRC)

bench: setup
	$(PY) bench/pull.py
	$(PY) bench/run.py
	$(PY) bench/pods.py

clean:
	rm -rf $(VENV) build *.egg-info
