"""Documentation stays in step with the code: every hook documented with its exact signature
and tested by a `test_hook_<name>`; docs/plugin_hooks.md is what scripts/hook_docs.py makes
of the hookspecs' docstrings; the public modules' examples run."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
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


def _hook_docs():
    """scripts/hook_docs.py, imported by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("hook_docs", ROOT / "scripts" / "hook_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_hooks_page_is_generated_from_the_hookspecs():
    generator = _hook_docs()
    stale = generator.diff((ROOT / "docs" / "plugin_hooks.md").read_text(),
                           generator.render(hookspecs))
    assert not stale, ("docs/plugin_hooks.md differs from the hookspecs' docstrings: edit the "
                       "docstrings, then run `make docs`\n" + stale)


def test_hook_docs_refuses_a_docstring_it_cannot_render_faithfully():
    generator = _hook_docs()

    def my_hook(method: str, model: int) -> bool:
        """Do it.

        :param method: the method.
        :return: whether it was done.
        """

    with pytest.raises(ValueError, match=r"my_hook.*\['method'\].*\['method', 'model'\]"):
        generator.hook_section("my_hook", my_hook)
    my_hook.__doc__ = "Do it.\n\n:param method: m.\n:param model: m."
    with pytest.raises(ValueError, match="':return:'"):
        generator.hook_section("my_hook", my_hook)
    my_hook.__doc__ = "Do it.\n\n    indented\n\n:param method: m.\n:param model: m.\n:return: r."
    with pytest.raises(ValueError, match="unexpected indentation"):
        generator.hook_section("my_hook", my_hook)
    assert doctest.testmod(generator).failed == 0


MODULES = ["editmethods", "editmethods.types", "editmethods.hparams", "editmethods.architectures",
           "editmethods.toolkit.tracing", "editmethods.eval_report", "editmethods.editor",
           "editmethods.model_loading"]


@pytest.mark.parametrize("module", MODULES)
def test_examples_in_docstrings_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
