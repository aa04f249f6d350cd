"""Methods of different shapes composed on one model: weight edits and adapters together."""

from __future__ import annotations

import torch

import editmethods_ft.plugin
import editmethods_lora.plugin
from editmethods import Editor, EditRequest
from editmethods.plugins import Plugins
from editmethods.testing import assert_same_state, state_copy, tiny_model, tiny_tokenizer

REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
WEIGHT = "transformer.h.1.mlp.c_proj.weight"


def _editor() -> Editor:
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_ft.plugin, name="ft")
    plugins.register(editmethods_lora.plugin, name="lora")
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)


def test_ft_and_lora_on_the_same_weight_roll_back_in_any_order():
    editor = _editor()
    state = state_copy(editor.model)
    ft = editor.edit(REQ, "ft", {"layers": [1], "num_steps": 5, "lr": 0.01})
    lora = editor.edit(REQ, "lora", {"layers": [1], "num_steps": 5})
    editor.rollback(ft)
    editor.rollback(lora)
    assert_same_state(editor.model, state)


def test_committing_an_adapter_survives_the_rollback_of_an_earlier_weight_edit():
    editor = _editor()
    original = editor.model.get_parameter(WEIGHT).detach().clone()
    ft = editor.edit(REQ, "ft", {"layers": [1], "num_steps": 5, "lr": 0.01})
    after_ft = editor.model.get_parameter(WEIGHT).detach().clone()
    lora = editor.edit(REQ, "lora", {"layers": [1], "num_steps": 5, "lr": 0.05})
    editor.commit(lora)
    merged = editor.model.get_parameter(WEIGHT).detach().clone() - after_ft
    assert merged.abs().max() > 0  # the adapter was folded into the weight
    editor.rollback(ft)
    torch.testing.assert_close(editor.model.get_parameter(WEIGHT).detach(), original + merged)
