# The two commands of the README: `make demo` and `make test`. Both set up what
# is missing first (Debian packages, the virtualenv), idempotently.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Python sources the format and lint checks cover (ruff would also format docs' code blocks).
PYSRC := podkit tests bench scripts

.PHONY: setup demo test unit check lint bench clean critest chaos

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	$(PY) -m pytest -q --durations=15 tests

# The tests that need no root (parsers, options, spec building, codecs, config): seconds,
# and runnable as any user. `make test` runs them too, with the root tier. As a user,
# setup (which installs packages) is left out: run `make setup` as root first.
unit: $(if $(filter 0,$(shell id -u)),setup)
	$(PY) -m pytest -q -m "not root" tests

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
	$(PY) bench/cri.py

clean:
	rm -rf $(VENV) build *.egg-info

# critest (the Kubernetes CRI validation suite) against a throwaway podkitd, with the
# offline images of ../shared/critest in a local registry: every spec.
critest: setup
	$(PY) scripts/critest.py

# The fault campaign (issue 10): SIGKILLs podkitd (and conmon, and podkitd's runc, CNI
# plugins and iptables-restore mid-operation) at random points for CHAOS_MINUTES,
# checking the store and the running containers after each restart and that nothing
# leaks at the end; prints the counts. Not part of `make test` (which runs
# a 60-second round in tests/test_chaos.py).
CHAOS_MINUTES ?= 10
chaos: setup
	$(PY) scripts/chaos.py --minutes $(CHAOS_MINUTES)
