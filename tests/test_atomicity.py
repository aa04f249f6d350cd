"""Edits, rollbacks and commits that fail half-way change nothing, say so truly, and can be
retried (issue #13, D4): a fault is injected at every tensor write of a multi-tensor update.
"""

from __future__ import annotations

import pytest
import torch

import editmethods.ledger as ledger_module
import editmethods_ft.plugin
import editmethods_lora.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import EditmethodsError
from editmethods.plugins import Plugins
from editmethods.testing import AddMethod, state_copy, tiny_model, tiny_tokenizer

REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
OTHER = EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")
LAYERS = [0, 1]  # two tensors per edit; two edits share both


def _editor() -> Editor:
    plugins = Plugins(entry_points=False)
    plugins.register(AddMethod(), name="add")
    plugins.register(editmethods_ft.plugin, name="ft")
    plugins.register(editmethods_lora.plugin, name="lora")
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)


class Fault:
    """Makes the ``at``-th tensor write (0-based) raise, once."""

    def __init__(self, monkeypatch, at: int) -> None:
        self.at, self.count = at, 0
        real = ledger_module.copy_into

        def failing(param, value):
            if self.count == self.at:
                self.count += 1
                raise RuntimeError("injected write failure")
            self.count += 1
            real(param, value)

        monkeypatch.setattr(ledger_module, "copy_into", failing)

    def undo(self, monkeypatch) -> None:
        monkeypatch.undo()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("at", [0, 1])
@pytest.mark.parametrize("method,hp", [("add", {"layers": LAYERS, "value": 0.25}),
                                       ("ft", {"layers": LAYERS, "num_steps": 3, "lr": 0.01})])
def test_an_edit_that_fails_at_any_write_changes_nothing(monkeypatch, at, method, hp):
    editor = _editor()
    first = editor.edit(OTHER, method, hp)  # an earlier edit on the same tensors
    state = state_copy(editor.model)
    Fault(monkeypatch, at)
    with pytest.raises(EditmethodsError, match="injected write failure.*the model was not changed"):
        editor.edit(REQ, method, hp)
    monkeypatch.undo()
    assert _same(state, state_copy(editor.model))
    assert editor.edits == [first]
    editor.rollback(first)  # and the ledger still rolls the earlier edit back exactly
    assert not editor.ledger.log and not editor.ledger.originals


@pytest.mark.parametrize("at", [0, 1])
@pytest.mark.parametrize("which", ["first", "second"])
def test_a_rollback_that_fails_at_any_write_changes_nothing_and_a_retry_is_exact(monkeypatch, at, which):
    editor = _editor()
    original = state_copy(editor.model)
    a = editor.edit(REQ, "add", {"layers": LAYERS, "value": 0.25})
    b = editor.edit(OTHER, "add", {"layers": LAYERS, "value": 0.125})
    state = state_copy(editor.model)
    target, survivor = (a, b) if which == "first" else (b, a)
    Fault(monkeypatch, at)
    with pytest.raises(EditmethodsError, match="still live and the weights are as they were before the rollback"):
        editor.rollback(target)
    monkeypatch.undo()
    assert _same(state, state_copy(editor.model)), "a failed rollback changed the weights"
    assert target in editor.edits
    editor.rollback(target)  # the retry: exact, and not subtracted twice
    alone = _editor()
    alone.edit(survivor.requests[0], "add", {"layers": LAYERS, "value": survivor.hparams.value})
    assert _same(state_copy(alone.model), state_copy(editor.model))
    editor.rollback(survivor)
    assert _same(original, state_copy(editor.model))


@pytest.mark.parametrize("at", [0, 1])
def test_a_commit_that_fails_at_any_write_changes_nothing(monkeypatch, at):
    import editmethods_lora.adapters as adapters
    from editmethods.ledger import added

    editor = _editor()
    original = state_copy(editor.model)
    ft = editor.edit(OTHER, "ft", {"layers": LAYERS, "num_steps": 3, "lr": 0.01})
    lora = editor.edit(REQ, "lora", {"layers": LAYERS, "num_steps": 3})
    merged = adapters.merged_deltas(editor.model, lora.edit_id)
    state = state_copy(editor.model)
    Fault(monkeypatch, at)
    with pytest.raises(EditmethodsError, match="injected write failure"):
        editor.commit(lora)
    monkeypatch.undo()
    assert _same(state, state_copy(editor.model)), "a failed commit changed the model"
    assert editor.edits == [ft, lora]
    editor.commit(lora)  # the retry merges once
    editor.rollback(ft)  # ... and the commit survives the rollback of the earlier edit
    assert editor.edits == []
    for delta in merged:  # exactly the original plus the adapter's merged form
        want = added(original[delta.param], delta)
        assert torch.equal(editor.model.get_parameter(delta.param).detach(), want)


def test_a_commit_whose_detach_fails_undoes_its_writes(monkeypatch):
    editor = _editor()
    lora = editor.edit(REQ, "lora", {"layers": LAYERS, "num_steps": 3})
    state = state_copy(editor.model)
    import editmethods_lora.adapters as adapters

    def broken(model, adapter):
        raise RuntimeError("injected detach failure")

    monkeypatch.setattr(adapters, "detach", broken)
    with pytest.raises(EditmethodsError, match="injected detach failure"):
        editor.commit(lora)
    monkeypatch.undo()
    assert _same(state, state_copy(editor.model))
    assert editor.edits == [lora]
    editor.rollback(lora)
    assert not editor.ledger.log
