"""Plugin discovery, registration checks and routing of lifecycle hooks."""

from __future__ import annotations

import importlib.metadata as metadata

import pluggy
import pytest

from editmethods import Editor, MethodError, Plugins, hookimpl
from editmethods.plugins import ENV_VAR
from editmethods.testing import AddMethod, make_plugins, tiny_model, tiny_tokenizer


def test_hook_register_methods_routes_each_call_to_its_owner(request_fr):
    a, b = AddMethod("add-a", value_override=0.01), AddMethod("add-b", value_override=0.02)
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(a, b))
    handle = editor.edit(request_fr, "add-b", {"layers": [0]})
    assert b.calls == ["add-b"] and a.calls == []  # the wrong plugin never answers
    assert float(handle.update.deltas[0].dense[0, 0]) == pytest.approx(0.02)


def test_duplicate_method_names_are_refused():
    plugins = Plugins(entry_points=False)
    plugins.register(AddMethod("same"), name="package-one")
    plugins.register(AddMethod("same"), name="package-two")
    with pytest.raises(MethodError, match="registered twice"):
        _ = plugins.methods


def test_unknown_method_lists_installed_ones(editor, request_fr):
    with pytest.raises(MethodError, match="installed methods: add"):
        editor.edit(request_fr, "rome-typo")


def test_unknown_hook_names_are_rejected_at_load():
    class Misspelled:
        @hookimpl
        def compute_updat(self, model):  # noqa: D401 - deliberately wrong name
            return None

    plugins = Plugins(entry_points=False)
    with pytest.raises(pluggy.PluginValidationError, match="compute_updat"):
        plugins.register(Misspelled(), name="misspelled")
    assert not plugins.pm.has_plugin("misspelled")


class _FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self._target, self.dist = name, target, None

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [e for e in eps] if group == "editmethods" else [])


def test_broken_plugin_is_reported_by_name_and_others_load(monkeypatch):
    good = AddMethod("good")
    _fake_entry_points(monkeypatch, [_FakeEntryPoint("broken", ImportError("no module named x")),
                                     _FakeEntryPoint("good", good)])
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.warns(UserWarning, match="'broken' failed to load"):
        plugins = Plugins()
    assert "broken" in plugins.load_errors and "good" in plugins.methods
    with pytest.raises(MethodError, match="failed to load: broken"):
        plugins.method("missing")


def test_env_var_limits_which_plugins_load(monkeypatch):
    _fake_entry_points(monkeypatch, [_FakeEntryPoint("one", AddMethod("one")),
                                     _FakeEntryPoint("two", AddMethod("two"))])
    monkeypatch.setenv(ENV_VAR, "two")
    assert set(Plugins().methods) == {"two"}
    monkeypatch.setenv(ENV_VAR, "")
    assert Plugins().methods == {}  # empty = none: the recovery path


def test_wrapper_plugins_see_every_lifecycle_call(request_fr):
    seen = []

    class Audit:
        @hookimpl(wrapper=True)
        def compute_update(self, method):
            update = yield
            seen.append((method, len(update.deltas)))
            return update

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod(), Audit()))
    editor.edit(request_fr, "add", {"layers": [0, 1]})
    assert seen == [("add", 2)]


def test_hook_register_architectures_declares_a_new_model_type(request_fr):
    import attrs

    from editmethods.architectures import BUILTIN, Architecture

    class Declares:
        @hookimpl
        def register_architectures(self, register):
            register(attrs.evolve(BUILTIN["gpt2"], model_type="my-gpt"))

    model = tiny_model("gpt2")
    model.config.model_type = "my-gpt"
    editor = Editor(model, tiny_tokenizer(), plugins=make_plugins(AddMethod(), Declares()))
    assert isinstance(editor.architecture, Architecture)
    editor.edit(request_fr, "add")


def test_hook_register_models_resolves_aliases(tmp_path):
    from editmethods import ModelAlias
    from editmethods.editor import resolve_model_name

    class Aliases:
        @hookimpl
        def register_models(self, register):
            register(ModelAlias(name="tiny", path=tmp_path, description="test"))

    plugins = make_plugins(Aliases())
    assert resolve_model_name("tiny", plugins) == str(tmp_path)
    assert resolve_model_name("gpt2-xl", plugins) == "gpt2-xl"


def test_plugin_infos_name_hooks_and_methods():
    infos = {i["name"]: i for i in make_plugins(AddMethod()).plugin_infos()}
    assert infos["add"]["methods"] == ["add"]
    assert "compute_update" in infos["add"]["hooks"]
    assert infos["editmethods.builtin.weights"]["package"] == "editmethods"


def test_installed_ft_is_found_through_its_entry_point(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ft")
    plugins = Plugins()
    assert plugins.method("ft").package == "editmethods-ft"
