"""Every method's saved edit is tied to its base (issue #13, D3): weight-writing methods by
the hashes of the tensors they write and read, attaching methods (LoRA, IKE, SERAC) by the
whole model's fingerprint. Loaded onto a base whose layer-0 attention was scaled by 1.5 the
edit is refused and nothing changes; onto the same base it reproduces the edited model."""

from __future__ import annotations

import pytest
import torch

from editmethods import Editor, EditRequest
from editmethods.errors import SavedEditError
from editmethods.evaluation.benchmarking import reference_hparams
from editmethods.plugins import get_plugins
from editmethods.testing import assert_same_state, state_copy

MODEL = "testbed-gpt2"
REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
PROBES = ["The capital of France is", "Miles Davis plays the"]
METHODS = sorted(m for m in get_plugins().methods
                 if reference_hparams(get_plugins(), m, MODEL) is not None)


@torch.no_grad()
def _logits(editor: Editor) -> list[torch.Tensor]:
    return [editor.model(**editor.tokenizer(p, return_tensors="pt")).logits for p in PROBES]


@pytest.mark.parametrize("method", METHODS)
def test_a_saved_edit_is_refused_on_an_altered_base_and_reproduced_on_the_same(method, tmp_path):
    editor = Editor.from_pretrained(MODEL)
    handle = editor.edit(REQ, method, reference_hparams(editor.plugins, method, MODEL))
    folder = editor.save_edit(handle, tmp_path / "edit")

    altered = Editor.from_pretrained(MODEL)
    with torch.no_grad():
        altered.model.get_parameter("transformer.h.0.attn.c_attn.weight").mul_(1.5)
    state = state_copy(altered.model)
    with pytest.raises(SavedEditError, match="different base model"):
        altered.load_edit(folder)
    assert_same_state(altered.model, state)
    assert altered.edits == []

    fresh = Editor.from_pretrained(MODEL)
    again = fresh.load_edit(folder)
    for a, b in zip(_logits(editor), _logits(fresh)):
        assert torch.equal(a, b)
    fresh.rollback(again)
    assert_same_state(fresh.model, state_copy(Editor.from_pretrained(MODEL).model))
