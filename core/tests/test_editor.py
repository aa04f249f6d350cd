"""The edit lifecycle: edit, evaluate, rollback (exact, any order), commit, save and re-apply,
and bad input that must leave the model exactly as it was."""

from __future__ import annotations

import pytest
import torch

from editmethods import (
    ArchitectureError,
    Delta,
    EditError,
    Editor,
    EditRequest,
    RollbackError,
    SavedEditError,
    Update,
    hookimpl,
)
from editmethods.testing import (
    AddMethod,
    assert_same_state,
    make_plugins,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)


def test_hook_compute_update_and_apply_write_the_delta(editor, request_fr):
    name = "transformer.h.1.mlp.c_proj.weight"
    before = editor.model.get_parameter(name).detach().clone()
    handle = editor.edit(request_fr, "add", {"layers": [1], "value": 0.5})
    after = editor.model.get_parameter(name).detach()
    torch.testing.assert_close(after, before + 0.5)
    assert handle.update.params == (name,) and editor.edits == [handle]
    assert handle.seconds > 0


def test_hook_rollback_restores_bit_for_bit_in_any_order(editor, request_fr):
    state = state_copy(editor.model)
    a = editor.edit(request_fr, "add", {"layers": [0, 1], "value": 0.1})
    b = editor.edit(request_fr, "add", {"layers": [1], "value": 0.3})
    editor.rollback(a)  # b still touches layer 1: a's delta is subtracted there
    name0 = "transformer.h.0.mlp.c_proj.weight"
    assert torch.equal(editor.model.get_parameter(name0), state[name0])  # only a touched it
    editor.rollback(b)
    assert_same_state(editor.model, state)
    with pytest.raises(RollbackError, match="already rolled back"):
        editor.rollback(b)
    with pytest.raises(RollbackError, match="no edit"):
        editor.rollback()


def test_rollback_default_is_the_last_edit(editor, request_fr):
    editor.edit(request_fr, "add")
    second = editor.edit(request_fr, "add")
    editor.rollback()
    assert second not in editor.edits and len(editor.edits) == 1
    editor.rollback_all()
    assert editor.edits == []


def test_rollback_of_a_handle_from_another_model_is_refused(request_fr):
    one = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    two = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    handle = one.edit(request_fr, "add")
    with pytest.raises(RollbackError, match="another model"):
        two.rollback(handle)


def test_hook_commit_makes_an_edit_permanent(editor, request_fr):
    handle = editor.edit(request_fr, "add", {"value": 0.2})
    edited = state_copy(editor.model)
    editor.commit(handle)
    assert editor.edits == [] and editor.ledger.originals == {}
    assert_same_state(editor.model, edited)
    with pytest.raises(RollbackError):
        editor.rollback(handle)


def test_hook_evaluate_reports_reliability_and_locality(editor, request_fr):
    editor.edit(request_fr, "add", {"value": 0.001})
    report = editor.evaluate([request_fr])
    assert 0.0 <= report["reliability"].value <= 1.0
    assert report["reliability"].protocol == "teacher-forced"
    assert report["locality"].n == 1  # pre-edit predictions were recorded by edit()


def test_hook_remember_unedited_sees_the_unedited_model_and_reaches_evaluate(request_fr):
    """A metric plugin records on the model before the edit is applied (and only then), and
    reads it back in ``context.unedited``; ``generation=True`` reaches it too."""
    from editmethods import MetricResult

    name = "transformer.h.1.mlp.c_proj.weight"

    class DriftMetric:
        calls: list[bool] = []

        @hookimpl
        def remember_unedited(self, model, requests, memory, generation):
            self.calls.append(generation)
            memory.setdefault("drift", {}).setdefault(
                "w", model.get_parameter(name).detach().clone())

        @hookimpl
        def evaluate(self, model, context):
            before = context.unedited["drift"]["w"]
            moved = float((model.get_parameter(name).detach() - before).abs().max())
            return [MetricResult("drift", moved, "test", 1)]

    metric = DriftMetric()
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod(), metric))
    editor.edit(request_fr, "add", {"layers": [1], "value": 0.25})
    editor.edit(request_fr, "add", {"layers": [1], "value": 0.25})  # recorded once: first edit's
    assert editor.evaluate([request_fr])["drift"].value == pytest.approx(0.5)
    editor.remember_unedited([request_fr], generation=True)
    assert metric.calls == [False, False, True]
    editor.rollback_all()
    assert editor.evaluate([request_fr])["drift"].value == 0.0


def test_hook_locate_can_choose_the_layers(request_fr):
    from editmethods import Location

    class LocatesLayerOne(AddMethod):
        @hookimpl
        def locate(self, method, hparams):
            return Location(layers=(1,))

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(LocatesLayerOne()))
    handle = editor.edit(request_fr, "add", {"layers": [0]})
    assert handle.update.params == ("transformer.h.1.mlp.c_proj.weight",)


def test_sequential_edits_and_batch_refusal(request_fr):
    class OneAtATime(AddMethod):
        @hookimpl
        def register_methods(self, register):
            from editmethods import MethodSpec
            from editmethods.testing import AddHParams

            register(MethodSpec(name=self.name, hparams_class=AddHParams, description="t", batch=False))

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(OneAtATime()))
    two = [request_fr, EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")]
    with pytest.raises(EditError, match="sequential=True"):
        editor.edit(two, "add")
    handles = editor.edit(two, "add", sequential=True)
    assert len(handles) == 2 and editor.edits == handles


@pytest.mark.parametrize("hparams, error, match", [
    ({"layers": [7]}, ArchitectureError, "outside the model"),
    ({"value": -1.0}, Exception, "must be > 0"),
])
def test_bad_input_leaves_the_model_untouched(editor, request_fr, hparams, error, match):
    state = state_copy(editor.model)
    with pytest.raises(error, match=match):
        editor.edit(request_fr, "add", hparams)
    assert_same_state(editor.model, state)
    assert editor.edits == []


def test_nan_update_is_refused(request_fr):
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(),
                    plugins=make_plugins(AddMethod(value_override=float("nan"))))
    state = state_copy(editor.model)
    with pytest.raises(EditError, match="NaN or inf"):
        editor.edit(request_fr, "add")
    assert_same_state(editor.model, state)


def test_update_for_a_missing_parameter_is_refused(request_fr):
    class Wrong(AddMethod):
        @hookimpl
        def compute_update(self, method):
            return Update(method=method, deltas=(Delta(param="transformer.h.9.mlp.c_proj.weight",
                                                        dense=torch.zeros(2, 2)),))

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(Wrong()))
    with pytest.raises(ArchitectureError, match="not in the model"):
        editor.edit(request_fr, "add")


def test_a_plugin_raising_inside_a_hook_is_named_and_changes_nothing(request_fr):
    class Raises(AddMethod):
        @hookimpl
        def compute_update(self, method):
            raise ZeroDivisionError("boom")

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(Raises()))
    state = state_copy(editor.model)
    with pytest.raises(EditError, match=r"plugin 'add'\) failed in compute_update: ZeroDivisionError"):
        editor.edit(request_fr, "add")
    assert_same_state(editor.model, state)


def test_a_failing_rollback_of_an_attaching_method_says_what_is_known(request_fr):
    """The core cannot snapshot what a method attaches: a rollback hook that fails must not
    claim the model is as it was (a weight edit's failed rollback can, see test_atomicity)."""

    class Attaches(AddMethod):
        attached: list[str] = []

        @hookimpl
        def compute_update(self, method):
            return Update(method=method, deltas=())

        @hookimpl
        def apply(self, handle):
            self.attached.append(handle.edit_id)
            return True

        @hookimpl
        def rollback(self, handle):
            self.attached.remove(handle.edit_id)
            raise OSError("disk gone")

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(Attaches()))
    handle = editor.edit(request_fr, "add")
    with pytest.raises(EditError, match="still live, but the method may have removed part"):
        editor.rollback(handle)
    assert editor.edits == [handle]


def test_saved_edit_reapplies_on_a_fresh_copy_and_is_refused_elsewhere(editor, request_fr, tmp_path):
    handle = editor.edit(request_fr, "add", {"layers": [0], "value": 0.25})
    edited = state_copy(editor.model)
    editor.save_edit(handle, tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["edit.json", "tensors.safetensors"]
    fresh = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    again = fresh.load_edit(tmp_path / "e")
    assert_same_state(fresh.model, edited)
    assert again.requests == handle.requests and again.hparams == handle.hparams
    other = Editor(tiny_model("gpt2", seed=3), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    with pytest.raises(SavedEditError, match="different base model"):
        other.load_edit(tmp_path / "e")
    with pytest.raises(SavedEditError, match="not a saved edit"):
        fresh.load_edit(tmp_path)


def test_low_rank_deltas_are_applied_as_their_product(request_fr):
    class RankOne(AddMethod):
        @hookimpl
        def compute_update(self, method, model, architecture):
            name = architecture.path("mlp_out", 0) + ".weight"
            rows, cols = model.get_parameter(name).shape
            return Update(method=method, deltas=(Delta(param=name, left=torch.ones(rows, 1),
                                                       right=torch.full((1, cols), 0.5)),))

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(RankOne()))
    name = "transformer.h.0.mlp.c_proj.weight"
    before = editor.model.get_parameter(name).detach().clone()
    editor.edit(request_fr, "add")
    torch.testing.assert_close(editor.model.get_parameter(name).detach(), before + 0.5)


def test_fp16_models_are_edited_by_upcasting(request_fr):
    model = tiny_model("gpt2").to(torch.float16)
    editor = Editor(model, tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    state = state_copy(model)
    editor.edit(request_fr, "add", {"value": 0.125})
    assert model.get_parameter("transformer.h.0.mlp.c_proj.weight").dtype == torch.float16
    editor.rollback()
    assert_same_state(model, state)


class _LogitBias:
    """A frozen-weight test method: apply attaches a forward hook adding a bias to the
    target's logit; rollback removes it."""

    name = "bias"

    def __init__(self):
        self.hooks = {}

    @hookimpl
    def register_methods(self, register):
        from editmethods import MethodSpec
        from editmethods.testing import AddHParams

        register(MethodSpec(name="bias", hparams_class=AddHParams, description="t",
                            writes_weights=False))

    @hookimpl
    def compute_update(self, method, model, tokenizer, requests):
        token = tokenizer(requests[0].target_text).input_ids[0]
        return Update(method=method, payload={"bias": torch.tensor([float(token), 5.0])})

    @hookimpl
    def apply(self, model, update, handle):
        token, value = int(update.payload["bias"][0]), float(update.payload["bias"][1])

        def hook(module, args, output):
            output.logits[..., token] += value
            return output

        self.hooks[handle.edit_id] = model.register_forward_hook(hook)
        return model

    @hookimpl
    def rollback(self, handle):
        hook = self.hooks.pop(handle.edit_id, None)
        if hook is None:
            return None
        hook.remove()
        return True


def test_hook_apply_attaches_state_for_frozen_methods(request_fr, tmp_path):
    method = _LogitBias()
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(method))
    state = state_copy(editor.model)
    ids = torch.tensor([editor.tokenizer(request_fr.prompt).input_ids])
    base = editor.model(input_ids=ids).logits
    handle = editor.edit(request_fr, "bias")
    assert_same_state(editor.model, state)  # no weight written
    assert not torch.equal(base, editor.model(input_ids=ids).logits)
    editor.save_edit(handle, tmp_path / "bias")
    editor.rollback(handle)
    assert torch.equal(base, editor.model(input_ids=ids).logits)
    editor.load_edit(tmp_path / "bias")  # hashes the embedding when no weight is read
    assert not torch.equal(base, editor.model(input_ids=ids).logits)
