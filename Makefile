# `make demo` and `make test` work on a fresh clone: both install into .venv first.
VENV := .venv
PACKAGES := $(wildcard core/pyproject.toml plugins/*/pyproject.toml editmethods-*/pyproject.toml)

.PHONY: demo test bench install

$(VENV)/.installed: constraints.txt requirements-dev.txt $(PACKAGES) scripts/install.sh
	bash scripts/install.sh

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/editmethods demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_reference.py
