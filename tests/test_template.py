"""The plugin template (plugins/_template) stays working: its plugin module is imported from
its path (the template is never installed) and runs a real edit through the core."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import tomllib

from editmethods import Editor, EditRequest
from editmethods.plugins import Plugins
from editmethods.scoring import score_targets
from editmethods.testing import assert_same_state, state_copy, tiny_model, tiny_tokenizer

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "_template"
PACKAGE = "editmethods_foo"


@pytest.fixture
def template_plugin():
    """The template's plugin module, imported from its source folder; sys.modules restored."""
    saved = {k: v for k, v in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".")}
    for key in saved:
        del sys.modules[key]
    pkg_dir = TEMPLATE / "src" / PACKAGE
    spec = importlib.util.spec_from_file_location(
        PACKAGE, pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    try:
        spec.loader.exec_module(package)
        entry = _entry_points()["foo"]
        yield importlib.import_module(entry)
    finally:
        for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
            del sys.modules[key]
        sys.modules.update(saved)


def _entry_points() -> dict[str, str]:
    doc = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    assert doc["project"]["name"] == "editmethods-foo"
    return doc["project"]["entry-points"]["editmethods"]


def test_template_plugin_edits_and_rolls_back(template_plugin):
    assert template_plugin.__file__.startswith(str(TEMPLATE))
    plugins = Plugins(entry_points=False)
    plugins.register(template_plugin, name="foo")
    assert list(plugins.methods) == ["foo"]  # the entry-point name is the method's name
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)
    state = state_copy(editor.model)
    req = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")

    def logprob() -> float:
        return float(score_targets(editor.model, editor.tokenizer, [req.prompt],
                                   [req.target_text]).logprobs[0].sum())

    before = logprob()
    handle = editor.edit(req, "foo", TEMPLATE / "src" / PACKAGE / "hparams" / "foo.yaml")
    assert logprob() > before + 1.0
    assert handle.update.params == ("transformer.h.0.mlp.c_proj.weight",)
    editor.rollback(handle)
    assert_same_state(editor.model, state)


def test_template_refuses_bad_input(template_plugin):
    from editmethods.errors import ArchitectureError, HyperParamsError

    plugins = Plugins(entry_points=False)
    plugins.register(template_plugin, name="foo")
    editor = Editor(tiny_model("llama"), tiny_tokenizer(), plugins=plugins)
    req = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
    with pytest.raises(HyperParamsError, match="step_norm"):
        editor.edit(req, "foo", {"step_norm": -1.0})
    with pytest.raises(ArchitectureError, match="outside the model"):
        editor.edit(req, "foo", {"layer": 5})
    assert editor.edits == []


def test_template_is_not_installed():
    # CI skips plugins/_template; an installed copy would hide a broken template.
    import importlib.metadata as metadata

    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("editmethods-foo")
