"""Editor.edit(guard=...): on by default for sequential edits, refusing (rolling back) an
edit that breaks the model as a whole; off by default for a single edit; off on request."""

from __future__ import annotations

import pytest
import torch

from editmethods import Editor, EditRequest
from editmethods.errors import CollapseError, RequestError
from editmethods.guard import Guard
from editmethods.hookspecs import hookimpl
from editmethods.testing import (
    AddMethod,
    assert_same_state,
    make_plugins,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)
from editmethods.types import Delta, Update

REQS = [EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
        EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")]
BREAKS = {"layers": [0, 1], "value": 3.0}     # noise of std 3 in the MLP weights: a collapse
HARMLESS = {"layers": [0], "value": 1e-6}


class NoiseMethod(AddMethod):
    """Adds seeded Gaussian noise of std ``value`` to the chosen MLP weights (a constant, as
    AddMethod adds, is mostly removed by the next layer norm)."""

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        gen = torch.Generator().manual_seed(0)
        deltas = []
        for layer in location.layers:
            name = architecture.path("mlp_out", layer) + ".weight"
            shape = tuple(model.get_parameter(name).shape)
            deltas.append(Delta(param=name, dense=torch.randn(shape, generator=gen) * hparams.value))
        return Update(method=method, deltas=tuple(deltas))


def _editor() -> Editor:
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(NoiseMethod()))


def test_a_sequential_edit_that_collapses_the_model_is_refused_by_default():
    editor = _editor()
    state = state_copy(editor.model)
    with pytest.raises(CollapseError, match="Perplexity on the guard.s .* prompts kept their greedy answer"):
        editor.edit(REQS, "add", BREAKS, sequential=True)
    assert_same_state(editor.model, state)
    assert editor.edits == []


def test_a_guard_refusal_keeps_the_edits_made_before():
    editor = _editor()
    kept = editor.edit(REQS[0], "add", HARMLESS, guard=True)
    state = state_copy(editor.model)
    with pytest.raises(CollapseError):
        editor.edit(REQS[1], "add", BREAKS, guard=Guard(max_perplexity_ratio=1.2))
    assert_same_state(editor.model, state)
    assert editor.edits == [kept]


def test_harmless_edits_pass_the_guard_and_it_can_be_turned_off():
    editor = _editor()
    assert len(editor.edit(REQS, "add", HARMLESS, sequential=True)) == 2
    editor.rollback_all()
    assert editor.edit(REQS[0], "add", BREAKS)  # a single edit is not guarded by default
    editor.rollback_all()
    assert len(editor.edit(REQS, "add", BREAKS, sequential=True, guard=False)) == 2


def test_a_bad_guard_value_is_refused():
    with pytest.raises(RequestError, match="guard"):
        _editor().edit(REQS[0], "add", HARMLESS, guard="on")
