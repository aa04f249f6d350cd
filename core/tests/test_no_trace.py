"""The conformance kit's no-trace check (#13 item 8) catches what a method may leave behind:
``.grad``, a changed ``requires_grad`` or training flag, a hook, a submodule."""

from __future__ import annotations

import pytest
import torch

from editmethods import Editor
from editmethods.hookspecs import hookimpl
from editmethods.testing import (
    AddMethod,
    MethodConformance,
    assert_no_trace,
    make_plugins,
    model_trace,
    tiny_model,
    tiny_tokenizer,
)


def test_every_kind_of_trace_is_named():
    model = tiny_model("gpt2")
    before = model_trace(model)
    assert_no_trace(model, before, "untouched")
    params = dict(model.named_parameters())
    w = params["transformer.h.0.mlp.c_fc.weight"]
    w.grad = torch.zeros_like(w)
    params["transformer.h.1.ln_2.bias"].requires_grad_(False)
    model.transformer.h[1].training = True  # this module only, not its children
    hook = model.transformer.h[0].register_forward_hook(lambda *a: None)
    with pytest.raises(AssertionError) as info:
        assert_no_trace(model, before, "after the edit")
    message = str(info.value)
    assert "after the edit, the model is not as it was (4 difference(s))" in message
    assert "parameter transformer.h.0.mlp.c_fc.weight: .grad is None True -> False" in message
    assert "parameter transformer.h.1.ln_2.bias: requires_grad True -> False" in message
    assert "module transformer.h.1: training False -> True" in message
    assert "module transformer.h.0: _forward_hooks" in message
    # an attaching method's live edit may hook; gradients and modes are still checked
    with pytest.raises(AssertionError, match=r"\(3 difference"):
        assert_no_trace(model, before, "live", allow_attached=True)
    hook.remove()
    model.transformer.h[0].add_module("extra", torch.nn.Identity())
    with pytest.raises(AssertionError, match=r"modules added \['transformer.h.0.extra'\]"):
        assert_no_trace(model, before, "after")


class _LeakyAdd(AddMethod):
    """Adds like AddMethod, after a backward pass through the model that leaves ``.grad``."""

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        ids = torch.tensor([[2, 3, 4]])
        model(input_ids=ids).logits.sum().backward()
        return super().compute_update(method, model, hparams, location, architecture)


def test_the_kit_fails_a_method_that_leaves_gradients():
    class Kit(MethodConformance):
        method = "add"
        plugin = None

    kit = Kit()
    good = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    kit.test_edit_and_rollback_leave_no_trace(good, "train")
    leaky = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(_LeakyAdd()))
    left = r"(?s)after a add edit \(eval mode\).*\.grad is None True -> False"
    with pytest.raises(AssertionError, match=left):
        kit.test_edit_and_rollback_leave_no_trace(leaky, "eval")
