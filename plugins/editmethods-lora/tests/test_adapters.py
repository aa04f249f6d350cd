"""LoRA-specific behaviour: named adapters, all active, exact removal, merge, hparams."""

from __future__ import annotations

import json

import pytest
import torch

import editmethods_lora.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import ArchitectureError, EditmethodsError, HyperParamsError
from editmethods.plugins import Plugins
from editmethods.testing import assert_same_state, logits_of, state_copy, tiny_model, tiny_tokenizer
from editmethods_lora import adapters

HP = {"layers": [0, 1], "rank": 4, "lora_alpha": 8, "num_steps": 15, "lr": 0.05}
FRANCE = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
MILES = EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")
PROMPTS = [FRANCE.prompt, MILES.prompt, "Berlin is the capital of"]


def make_editor(model_type: str = "gpt2") -> Editor:
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_lora.plugin, name="lora")
    return Editor(tiny_model(model_type), tiny_tokenizer(), plugins=plugins)


def lora_modules(model):
    return adapters.layers_with(model, next(iter(adapters.adapter_names(model))))


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "t5"])
def test_last_adapter_deleted_model_is_bit_identical(model_type):
    editor = make_editor(model_type)
    model = editor.model
    state = state_copy(model)
    logits = logits_of(editor, PROMPTS)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    attributes = set(vars(model))
    first = editor.edit(FRANCE, "lora", HP)
    second = editor.edit(MILES, "lora", HP)
    assert adapters.adapter_names(model) == {first.edit_id, second.edit_id}
    editor.rollback(first)
    editor.rollback(second)
    assert_same_state(model, state)  # keys (peft layers unwrapped) and values
    for a, b in zip(logits, logits_of(editor, PROMPTS)):
        assert torch.equal(a, b)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert set(vars(model)) == attributes  # no peft_config left behind


def test_adapter_named_by_edit_id_and_base_weights_never_written():
    editor = make_editor()
    base = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    handle = editor.edit(FRANCE, "lora", HP)
    layers = adapters.layers_with(editor.model, handle.edit_id)
    assert sorted(layers) == ["transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"]
    for name, layer in layers.items():
        assert torch.equal(layer.get_base_layer().weight, base[f"{name}.weight"])
    assert set(handle.update.payload) == {f"{n}.{ab}" for n in layers for ab in ("lora_A", "lora_B")}
    assert handle.update.reads == tuple(f"{n}.weight" for n in sorted(layers))


def test_all_adapters_contribute_and_rollback_keeps_the_others(tmp_path):
    editor = make_editor()
    first = editor.edit(FRANCE, "lora", HP)
    only_first = logits_of(editor, PROMPTS)
    second = editor.edit(MILES, "lora", HP)
    for layer in lora_modules(editor.model).values():
        assert sorted(layer.active_adapters) == sorted([first.edit_id, second.edit_id])
    both = logits_of(editor, PROMPTS)
    assert not torch.equal(both[1], only_first[1])  # the second adapter acts
    # the first adapter still acts: removing it changes the output
    editor.rollback(first)
    only_second = logits_of(editor, PROMPTS)
    assert not torch.equal(both[0], only_second[0])
    # and what is left is the second adapter alone, as it was trained
    editor.save_edit(second, tmp_path / "second")
    fresh = make_editor()
    fresh.load_edit(tmp_path / "second")
    for a, b in zip(only_second, logits_of(fresh, PROMPTS)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_sequential_edits_get_one_adapter_each():
    editor = make_editor()
    state = state_copy(editor.model)
    # guard off: on a random tiny model any edit moves the guard's probe answers
    handles = editor.edit([FRANCE, MILES], "lora", HP, sequential=True, guard=False)
    assert adapters.adapter_names(editor.model) == {h.edit_id for h in handles}
    editor.rollback_all()
    assert_same_state(editor.model, state)


def test_commit_merges_one_adapter_and_keeps_the_other():
    editor = make_editor()
    model = editor.model
    keys = set(model.state_dict())
    first = editor.edit(FRANCE, "lora", {**HP, "layers": [0]})
    second = editor.edit(MILES, "lora", {**HP, "layers": [1]})
    edited = logits_of(editor, PROMPTS)
    w0 = model.get_parameter("transformer.h.0.mlp.c_proj.weight").detach().clone()
    editor.commit(first)
    assert adapters.adapter_names(model) == {second.edit_id}
    assert not torch.equal(model.get_parameter("transformer.h.0.mlp.c_proj.weight"), w0)
    for a, b in zip(edited, logits_of(editor, PROMPTS)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(EditmethodsError, match="already rolled back or committed"):
        editor.rollback(first)
    editor.rollback(second)
    assert set(model.state_dict()) == keys
    assert adapters.adapter_names(model) == set()


def test_saved_edit_is_small_and_refused_on_another_base(tmp_path):
    editor = make_editor()
    handle = editor.edit(FRANCE, "lora", HP)
    folder = editor.save_edit(handle, tmp_path / "edit")
    doc = json.loads((folder / "edit.json").read_text())
    assert doc["meta"]["modules"] == ["transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"]
    assert set(doc["base_hashes"]) == set(handle.update.reads) | {"*"}  # and the whole model
    other = Editor(tiny_model("gpt2", seed=3), tiny_tokenizer(), plugins=editor.plugins)
    state = state_copy(other.model)
    with pytest.raises(EditmethodsError, match="different base model"):
        other.load_edit(folder)
    assert_same_state(other.model, state)


def test_easyedit_yaml_loads(tmp_path):
    path = tmp_path / "lora.yaml"
    path.write_text(
        "alg_name: \"LoRA\"\nmodel_name: \"./hugging_cache/llama-2-7b\"\ndevice: 0\n"
        "lora_type: \"lora\"\nlayers: []\nnum_steps: 5\nbatch_size: 1\nmax_length: 30\n"
        "lr: 5e-3\nweight_decay: 0\nkl_factor: 0\nrank: 4\nlora_alpha: 32\nlora_dropout: 0.1\n"
        "norm_constraint: false\ntarget_modules: [\"q_proj\", \"v_proj\"]\nmodel_parallel: false\n"
    )
    editor = make_editor("llama")
    state = state_copy(editor.model)
    with pytest.warns(UserWarning, match="not a hyper-parameter"):
        handle = editor.edit(FRANCE, "lora", path)
    assert handle.hparams.lr == 5e-3 and handle.hparams.target_modules == ("q_proj", "v_proj")
    assert len(handle.update.meta["modules"]) == 4  # q_proj and v_proj of both layers
    # dropout acts only while training: the applied adapter answers deterministically
    a = logits_of(editor, PROMPTS)
    assert all(torch.equal(x, y) for x, y in zip(a, logits_of(editor, PROMPTS)))
    editor.rollback(handle)
    assert_same_state(editor.model, state)


@pytest.mark.parametrize("bad, message", [
    ({"lora_type": "adalora"}, "AdaLoRA"),
    ({"kl_factor": 0.5}, "no KL term"),
    ({"norm_constraint": 1e-3}, "does not bound"),
    ({"rank": 0}, "'rank' must be >= 1"),
    ({"lora_dropout": 1.0}, "'lora_dropout' must be < 1"),
])
def test_unimplemented_or_bad_settings_refused(bad, message):
    editor = make_editor()
    state = state_copy(editor.model)
    with pytest.raises(HyperParamsError, match=message):
        editor.edit(FRANCE, "lora", {**HP, **bad})
    assert_same_state(editor.model, state)


@pytest.mark.parametrize("bad, error, message", [
    ({"target_modules": ["no_such_proj"]}, ArchitectureError, "match no module"),
    ({"target_modules": ["ln_1"]}, EditmethodsError, "LoRA adapts nn.Linear"),
    ({"layers": [7]}, ArchitectureError, "outside the model"),
])
def test_bad_targets_refused_model_untouched(bad, error, message):
    editor = make_editor()
    state = state_copy(editor.model)
    with pytest.raises(error, match=message):
        editor.edit(FRANCE, "lora", {**HP, **bad})
    assert_same_state(editor.model, state)
    assert adapters.adapter_names(editor.model) == set()


def test_training_leaves_global_rng_alone():
    editor = make_editor()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    editor.edit(FRANCE, "lora", HP)
    assert torch.equal(torch.rand(3), expected)
