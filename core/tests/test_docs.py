"""Documentation stays in step with the code: every hook documented with its exact signature
and tested by a `test_hook_<name>`; the public modules' examples run."""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
from pathlib import Path

import pytest

from editmethods import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name for name, f in vars(hookspecs).items()
    if callable(f) and hasattr(f, "editmethods_spec")
)


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"`{name}({params}) -> {sig.return_annotation}`"


def test_hooks_found():
    assert {"register_methods", "locate", "compute_update", "apply", "rollback", "evaluate"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text()
    assert f"\n## {hook}(" in docs, f"docs/plugin_hooks.md has no section for {hook}"
    assert _signature(hook) in docs, f"signature of {hook} in docs differs from {_signature(hook)}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    pattern = re.compile(rf"def test_hook_{hook}")
    files = [p for top in ROOT.iterdir() if top.is_dir() and not top.name.startswith(".")
             for p in top.rglob("test_*.py")]
    assert any(pattern.search(p.read_text()) for p in files), f"no test_hook_{hook} test"


MODULES = ["editmethods", "editmethods.types", "editmethods.hparams", "editmethods.architectures",
           "editmethods.toolkit.tracing", "editmethods.eval_report", "editmethods.editor",
           "editmethods.model_loading"]


@pytest.mark.parametrize("module", MODULES)
def test_examples_in_docstrings_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
