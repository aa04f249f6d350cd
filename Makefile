# `make demo` and `make test` work on a fresh clone: both install into .venv first.
VENV := .venv
PACKAGES := $(wildcard core/pyproject.toml plugins/*/pyproject.toml editmethods-*/pyproject.toml)

.PHONY: demo test bench install lint

$(VENV)/.installed: constraints.txt requirements-dev.txt $(PACKAGES) scripts/install.sh
	bash scripts/install.sh

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/editmethods demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

# ruff (lint + import order) over the whole repository, mypy over core and every package's
# src (settings in the root pyproject.toml); CI runs it before the tests.
TYPED_SRC := core/src/editmethods $(filter-out %.egg-info,$(wildcard editmethods-*/src/* plugins/*/src/*))
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(TYPED_SRC)

# The README's two benchmark tables, the real model (benchmarks/smollm2.yaml) first, then the
# GPT-2 reference model (benchmarks/reference.yaml); resumable: finished runs are kept under
# benchmarks/results/**/runs/ and not run again (make bench FORCE=1 reruns them). Prints the
# wall time of each table and of the whole.
bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_reference.py $(if $(FORCE),--force)

# docs/plugin_hooks.md, generated from the docstrings of core/src/editmethods/hookspecs.py (a
# test fails when it is stale; `python scripts/hook_docs.py --check` says how).
.PHONY: docs
docs: $(VENV)/.installed
	$(VENV)/bin/python scripts/hook_docs.py
