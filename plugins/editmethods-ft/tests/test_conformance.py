"""editmethods-ft against the core's conformance kit, on a tiny model of every type its
MethodSpec declares."""

import editmethods_ft.plugin
from editmethods.testing import MethodConformance


class TestFTM(MethodConformance):
    method = "ft"
    plugin = editmethods_ft.plugin
    hparams = {"layers": [0, 1], "objective": "target_new", "num_steps": 20, "lr": 0.01}


class TestFTL(MethodConformance):
    method = "ft"
    plugin = editmethods_ft.plugin
    hparams = {"layers": [0, 1], "objective": "prompt_last", "num_steps": 20, "lr": 0.02,
               "norm_constraint": 0.1}


def test_edit_leaves_no_gradients_and_keeps_requires_grad_flags():
    """The model's parameters are frozen during the edit only: no .grad written, flags kept."""
    from editmethods import Editor, EditRequest
    from editmethods.testing import make_plugins, tiny_model, tiny_tokenizer

    plugins = make_plugins(editmethods_ft.plugin)
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    flags = [p.requires_grad for p in params]
    editor = Editor(model, tokenizer, plugins=plugins)
    req = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
    editor.edit(req, "ft", {"layers": [0], "num_steps": 3, "lr": 0.01})
    assert [p.requires_grad for p in params] == flags
    assert all(p.grad is None for p in params)
