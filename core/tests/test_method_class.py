"""A method written as a subclass of :class:`editmethods.Method`: registered from a module, a
class or an instance, it edits and rolls back through the core, answers only for its own
name, and a malformed subclass is refused when it is defined."""

from __future__ import annotations

import sys
import types

import attrs
import pytest
import torch

from editmethods import Delta, Editor, HyperParams, Method, MethodError, MethodSpec, Update
from editmethods.method import as_plugin, method_classes
from editmethods.plugins import Plugins
from editmethods.testing import assert_same_state, state_copy, tiny_model, tiny_tokenizer


@attrs.frozen
class ShiftHParams(HyperParams):
    layers: tuple[int, ...] = (0,)
    value: float = 0.01


class Shift(Method):
    """Adds ``value`` to the MLP output weights of ``layers`` (the core derives the location
    from ``hparams.layers``: no locate step)."""

    spec = MethodSpec(name="shift", hparams_class=ShiftHParams, description="test", batch=True)

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[str] = []

    def compute_update(self, method, model, hparams, location, architecture):
        self.calls.append(method)
        deltas = []
        for layer in location.layers:
            name = architecture.path("mlp_out", layer) + ".weight"
            shape = tuple(model.get_parameter(name).shape)
            deltas.append(Delta(param=name, dense=torch.full(shape, hparams.value * self.scale)))
        return Update(method=method, deltas=tuple(deltas))


class Other(Shift):
    spec = attrs.evolve(Shift.spec, name="other")


@pytest.fixture
def req():
    from editmethods import EditRequest

    return EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")


def _editor(*plugins, model_type="gpt2"):
    pm = Plugins(entry_points=False)
    for p in plugins:
        pm.register(p)
    return Editor(tiny_model(model_type), tiny_tokenizer(), plugins=pm)


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "t5"])
def test_a_subclass_edits_and_rolls_back_exactly(model_type, req):
    method = Shift()
    editor = _editor(method, model_type=model_type)
    state = state_copy(editor.model)
    handle = editor.edit(req, "shift", {"layers": [0, 1]})
    assert method.calls == ["shift"] and len(handle.update.deltas) == 2
    assert not torch.equal(editor.model.get_parameter(handle.update.params[0]),
                           state[handle.update.params[0]])
    editor.rollback(handle)
    assert_same_state(editor.model, state)


def test_registered_from_a_module_with_its_own_hookimpls(req):
    from editmethods import hookimpl

    module = types.ModuleType("fake_method_package.plugin")
    seen = []

    class Local(Shift):
        spec = attrs.evolve(Shift.spec, name="local")

    class Abstract(Method, abstract=True):  # a shared base: never registered
        pass

    @hookimpl
    def register_commands(cli):
        seen.append(cli)

    Local.__module__ = Abstract.__module__ = module.__name__
    module.Local, module.Abstract, module.Shift = Local, Abstract, Shift  # Shift: imported
    module.register_commands = register_commands
    assert method_classes(module) == [Local]

    plugins = Plugins(entry_points=False, builtins=False)
    assert plugins.register(module, name="pkg") == "pkg"
    assert list(plugins.methods) == ["local"] and plugins.method("local").plugin_name == "pkg"
    plugins.pm.hook.register_commands(cli="cli")
    assert seen == ["cli"]
    (row,) = plugins.plugin_infos()  # one row per registered object, its methods' hooks in it
    assert row["name"] == "pkg" and row["methods"] == ["local"]
    assert row["hooks"] == ["compute_update", "register_commands", "register_methods"]
    plugins.unregister(module)
    assert plugins.methods == {} and plugins.pm.get_plugins() == set()


def test_a_class_is_registered_under_its_method_name():
    plugins = Plugins(entry_points=False, builtins=False)
    assert plugins.register(Shift) == "shift"
    assert isinstance(plugins.method("shift").plugin.method, Shift)
    plugins.unregister(Shift)
    assert plugins.methods == {}


def test_each_step_answers_only_for_its_own_name(req):
    shift, other = Shift(), Other(scale=2.0)
    editor = _editor(shift, other)
    handle = editor.edit(req, "other", {"layers": [0], "value": 0.01})
    assert other.calls == ["other"] and shift.calls == []
    assert float(handle.update.deltas[0].dense[0, 0]) == pytest.approx(0.02)
    # Even a hook called on every plugin at once (no routing) reaches only the owner.
    model, arch = editor.model, editor.architecture
    update = editor.plugins.pm.hook.compute_update(
        method="shift", model=model, tokenizer=editor.tokenizer, requests=(req,),
        hparams=ShiftHParams(), location=handle.location, architecture=arch)
    assert shift.calls == ["shift"] and other.calls == ["other"]
    assert float(update.deltas[0].dense[0, 0]) == pytest.approx(0.01)


def test_steps_take_any_subset_of_the_hook_arguments_by_name():
    got = {}

    class Picky(Method):
        spec = MethodSpec(name="picky", hparams_class=ShiftHParams, description="test")

        def locate(self, architecture, hparams):  # any order, any subset
            got["locate"] = (type(architecture).__name__, type(hparams).__name__)
            return None

        @staticmethod
        def compute_update(requests, method):
            got["compute_update"] = (len(requests), method)
            return Update(method=method)

        @classmethod
        def commit(cls):
            return True

    plugin = as_plugin(Picky)
    plugins = Plugins(entry_points=False, builtins=False)
    plugins.register(plugin.method)
    hook = plugins.pm.hook
    from editmethods.architectures import BUILTIN

    assert hook.locate(method="picky", model=None, tokenizer=None, requests=(), hparams=ShiftHParams(),
                       architecture=BUILTIN["gpt2"]) is None
    assert got["locate"] == ("Architecture", "ShiftHParams")
    assert hook.compute_update(method="picky", model=None, tokenizer=None, requests=(1, 2),
                               hparams=None, location=None, architecture=None).method == "picky"
    assert got["compute_update"] == (2, "picky")
    assert hook.commit(method="picky", model=None, handle=None) is True
    assert hook.commit(method="someone-else", model=None, handle=None) is None


def test_a_subclass_without_spec_is_refused():
    with pytest.raises(MethodError, match=r"NoSpec: sets no spec: add spec = MethodSpec\("):
        class NoSpec(Method):
            def compute_update(self, model):
                return None


def test_a_spec_of_the_wrong_type_is_refused():
    with pytest.raises(MethodError, match=r"spec: must be an editmethods.MethodSpec, got dict"):
        class WrongSpec(Method):
            spec = {"name": "wrong"}

            def compute_update(self, model):
                return None


def test_a_misspelled_step_is_refused_with_a_suggestion():
    with pytest.raises(MethodError, match=r"compute_updates is not a lifecycle step .*"
                                          r"did you mean 'compute_update'\?"):
        class Misspelled(Method):
            spec = MethodSpec(name="misspelled", hparams_class=ShiftHParams, description="t")

            def compute_update(self, model):
                return None

            def compute_updates(self, model):
                return None


def test_every_problem_is_reported_at_once():
    with pytest.raises(MethodError) as info:
        class Bad(Method):
            def rolback(self, model, handle):
                return True

            def locate(self, model, hparam):
                return None

            def apply(self, *args, **kwargs):
                return None

            def register_commands(self, cli):
                pass

            compute_update = staticmethod(lambda model: None)
            commit = lambda model, handle: True  # noqa: E731 - no self: a likely mistake

    message = str(info.value)
    for part in ("rolback is not a lifecycle step", "did you mean 'rollback'",
                 "locate takes 'hparam', which the locate hook does not pass (did you mean "
                 "'hparams'?)", "apply takes *args", "apply takes **kwargs",
                 "register_commands is a hook, not a lifecycle step", "module-level @hookimpl",
                 "commit(model, handle) takes no self", "commit = staticmethod(function)",
                 "sets no spec"):
        assert part in message, (part, message)


def test_a_method_without_compute_update_is_refused():
    with pytest.raises(MethodError, match="defines no compute_update"):
        class Nothing(Method):
            spec = MethodSpec(name="nothing", hparams_class=ShiftHParams, description="t")


def test_register_methods_is_derived_from_spec():
    with pytest.raises(MethodError, match="register_methods is derived from spec"):
        class Registers(Method):
            spec = MethodSpec(name="registers", hparams_class=ShiftHParams, description="t")

            def register_methods(self, register):
                pass

            def compute_update(self):
                return None


def test_an_abstract_base_needs_no_spec_and_is_not_registered():
    class Base(Method, abstract=True):
        def compute_update(self, method):
            return Update(method=method)

    class Concrete(Base):
        spec = MethodSpec(name="concrete", hparams_class=ShiftHParams, description="t")

    assert as_plugin(Concrete).method.spec.name == "concrete"
    with pytest.raises(MethodError, match="abstract=True: register a subclass"):
        as_plugin(Base)


def test_a_subclass_must_declare_its_own_spec():
    with pytest.raises(MethodError, match="sets no spec"):
        class Copy(Shift):  # would register "shift" a second time
            pass


def test_a_class_that_needs_arguments_names_the_way_out():
    class Needs(Method):
        spec = MethodSpec(name="needs", hparams_class=ShiftHParams, description="t")

        def __init__(self, path):
            self.path = path

        def compute_update(self):
            return None

    with pytest.raises(MethodError, match="with no arguments.*configured instance"):
        Plugins(entry_points=False, builtins=False).register(Needs)
    plugins = Plugins(entry_points=False, builtins=False)
    plugins.register(Needs("/somewhere"))
    assert "needs" in plugins.methods


def test_ported_packages_declare_decoder_only_from_one_place():
    from editmethods.architectures import BUILTIN, DECODER_ONLY

    assert DECODER_ONLY == ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")
    assert all(BUILTIN[t].encoder is None for t in DECODER_ONLY) and "t5" not in DECODER_ONLY


def test_shipped_hparams_are_found_next_to_the_class_module():
    plugin = as_plugin(Shift)
    assert plugin.__file__ == sys.modules[__name__].__file__
