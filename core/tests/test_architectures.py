"""Module paths by config.model_type, checked on tiny random models of every architecture."""

from __future__ import annotations

import pytest
import torch

from editmethods import Architecture, ArchitectureError, Editor
from editmethods.architectures import BUILTIN, weight_layout
from editmethods.testing import make_plugins, tiny_model, tiny_tokenizer
from editmethods.toolkit.tracing import first_tensor, trace

TYPES = ["gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "t5"]


@pytest.mark.parametrize("model_type", TYPES)
def test_every_role_resolves_and_traces(model_type):
    model = tiny_model(model_type)
    arch = BUILTIN[model_type]
    assert arch.n_layers(model) == 2
    stacks = [arch] + ([arch.encoder] if arch.encoder else [])
    for stack in stacks:
        for layer in range(2):
            for role in ("layer", "attn", "mlp", "mlp_in", "mlp_out"):
                assert isinstance(stack.module(model, role, layer), torch.nn.Module)
        for role in ("embed", "final_norm", "lm_head"):
            assert isinstance(stack.module(model, role), torch.nn.Module)
    expected = "in_out" if model_type == "gpt2" else "out_in"
    assert weight_layout(arch.module(model, "mlp_out", 1)) == expected

    ids = torch.tensor([tiny_tokenizer()("The capital of France is").input_ids])
    names = [arch.path("mlp_out", 1), arch.path("layer", 0)]
    kwargs = {"decoder_input_ids": ids[:, :3]} if model_type == "t5" else {}
    with trace(model, names, retain_input=True) as rec:
        model(input_ids=ids, **kwargs)
    out = rec[names[0]]
    width = out.input.shape[-1]
    weight = model.get_parameter(names[0] + ".weight")
    assert width == (weight.shape[0] if expected == "in_out" else weight.shape[1])
    assert first_tensor(rec[names[1]].output).shape[-1] == weight.shape[1 if expected == "in_out" else 0]


def test_unknown_architecture_says_how_to_declare_it():
    model = tiny_model("gpt2")
    model.config.model_type = "fancy-new"
    editor = Editor(model, tiny_tokenizer(), plugins=make_plugins())
    with pytest.raises(ArchitectureError, match=r"unknown architecture 'fancy-new'.*architecture=Architecture\("):
        _ = editor.architecture
    declared = Architecture(model_type="fancy-new", layer="transformer.h.{}", attn="transformer.h.{}.attn",
                            mlp="transformer.h.{}.mlp", mlp_in="transformer.h.{}.mlp.c_fc",
                            mlp_out="transformer.h.{}.mlp.c_proj", embed="transformer.wte",
                            final_norm="transformer.ln_f", lm_head="lm_head", n_layers_keys=("n_layer",))
    assert Editor(model, tiny_tokenizer(), architecture=declared).architecture is declared


def test_missing_module_and_layer_errors():
    model = tiny_model("llama")
    arch = BUILTIN["llama"]
    with pytest.raises(ArchitectureError, match="outside the model: llama has layers 0..1"):
        arch.module(model, "mlp_out", 2)
    with pytest.raises(ArchitectureError, match="'model.nope' is not in the model"):
        with trace(model, ["model.nope"]):
            pass


def test_hooks_are_removed_also_on_exceptions():
    model = tiny_model("gpt2")
    name = BUILTIN["gpt2"].path("mlp", 0)
    module = model.get_submodule(name)
    with pytest.raises(RuntimeError):
        with trace(model, [name], retain_input=True, edit_output=lambda n, x: x * 0):
            raise RuntimeError("fail inside")
    assert not module._forward_hooks and not module._forward_pre_hooks


def test_edit_output_replaces_and_stop_after_ends_the_pass():
    model = tiny_model("gpt2")
    arch = BUILTIN["gpt2"]
    ids = torch.tensor([[5, 6, 7]])
    base = model(input_ids=ids).logits
    with trace(model, [arch.path("mlp", 1)], edit_output=lambda n, x: x + 1.0):
        changed = model(input_ids=ids).logits
    assert not torch.allclose(base, changed)
    with trace(model, [arch.path("mlp_out", 0)], retain_input=True, stop_after=arch.path("mlp_out", 0)) as rec:
        model(input_ids=ids)
    assert rec[arch.path("mlp_out", 0)].input.shape == (1, 3, 128)
