"""MEND's mechanics on tiny models: the pseudo-gradient, checkpoints tied to their base
model, refused bad input, batch edits, and the training command."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import editmethods_mend.plugin
from editmethods.architectures import BUILTIN
from editmethods.editor import Editor
from editmethods.errors import EditError, HyperParamsError
from editmethods.plugins import Plugins
from editmethods.testing import assert_same_state, logits_of, state_copy, tiny_model, tiny_tokenizer
from editmethods.types import EditRequest
from editmethods_mend.checkpoint import CONFIG, WEIGHTS, model_hash
from editmethods_mend.factors import collect_factors, encode, param_specs, per_sequence_nll
from editmethods_mend.network import MENDEditor

REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")


def make_editor(model) -> Editor:
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_mend.plugin, name="mend")
    return Editor(model, tiny_tokenizer(), plugins=plugins)


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_identity_editor_without_statistics_is_a_gradient_step(model_type):
    """Σ_t u_t δ_tᵀ, laid out as the weight, is the weight's true gradient (Conv1D [in, out]
    and nn.Linear [out, in]); an identity editor scales it by its step size."""
    model, tok = tiny_model(model_type), tiny_tokenizer()
    arch = BUILTIN[model_type]
    specs = param_specs(model, arch, [0, 1], ["mlp_in", "mlp_out"])
    batch = encode(tok, [(REQ.prompt, REQ.target_text), ("Miles Davis plays the", " piano")])
    factors = collect_factors(model, batch, [s.name for s in specs])
    model.zero_grad()
    per_sequence_nll(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits,
                     batch.labels).sum().backward()
    editor = MENDEditor(specs, rank=4, init_lr=0.5).eval()
    with torch.no_grad():
        editor.nets[specs[0].shape_key].hidden.up.zero_()
        editor.nets[specs[1].shape_key].hidden.up.zero_()
    for spec in specs:
        grad = model.get_parameter(spec.name).grad
        left, right = editor.low_rank_update(spec.name, *factors[spec.name])
        torch.testing.assert_close(left @ right, -0.5 * grad, rtol=1e-4, atol=1e-6)
    model.zero_grad()


def test_trained_checkpoint_edits_and_rolls_back(trained_tiny):
    model, folder = trained_tiny
    config = json.loads((folder / CONFIG).read_text())
    assert config["base_model_hash"] == model_hash(model)
    editor = make_editor(model)
    state = state_copy(model)
    handle = editor.edit(REQ, "mend", {"checkpoint": str(folder)})
    assert all(d.left is not None and d.right is not None for d in handle.update.deltas)
    assert set(handle.update.params) == {p["name"] for p in config["params"]}
    editor.rollback(handle)
    assert_same_state(model, state)


def test_checkpoint_for_another_model_is_refused_with_both_hashes(trained_tiny):
    _, folder = trained_tiny
    other = tiny_model("gpt2", seed=1)
    editor = make_editor(other)
    state = state_copy(other)
    with pytest.raises(EditError) as info:
        editor.edit(REQ, "mend", {"checkpoint": str(folder)})
    message = str(info.value)
    assert json.loads((folder / CONFIG).read_text())["base_model_hash"] in message
    assert model_hash(other) in message
    assert_same_state(other, state)


def test_weight_the_editor_was_not_trained_for_is_refused(trained_tiny):
    model, folder = trained_tiny
    editor = make_editor(model)
    state = state_copy(model)
    with pytest.raises(HyperParamsError, match=r"not trained for weight.*h.0.mlp.c_fc.weight.*@ hparams.layers"):
        editor.edit(REQ, "mend", {"checkpoint": str(folder), "layers": [0], "roles": ["mlp_in"]})
    assert_same_state(model, state)


def test_layers_subset_of_trained_weights(trained_tiny):
    model, folder = trained_tiny
    editor = make_editor(model)
    handle = editor.edit(REQ, "mend", {"checkpoint": str(folder), "layers": [1], "roles": ["mlp_out"]})
    assert handle.update.params == ("transformer.h.1.mlp.c_proj.weight",)
    editor.rollback(handle)


def test_nan_in_the_update_is_refused_and_model_untouched(trained_tiny, tmp_path):
    model, folder = trained_tiny
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG).write_text((folder / CONFIG).read_text())
    state = load_file(str(folder / WEIGHTS))
    state["lrs"] = torch.full_like(state["lrs"], float("nan"))
    save_file(state, str(broken / WEIGHTS))
    editor = make_editor(model)
    before = state_copy(model)
    logits = logits_of(editor, [REQ.prompt])
    with pytest.raises(EditError, match="NaN or inf"):
        editor.edit(REQ, "mend", {"checkpoint": str(broken)})
    assert_same_state(model, before)
    assert torch.equal(logits[0], logits_of(editor, [REQ.prompt])[0])
    assert editor.edits == []


def test_missing_checkpoint_and_no_bundled_editor_are_explained():
    editor = make_editor(tiny_model("gpt2"))
    with pytest.raises(HyperParamsError, match="does not exist @ hparams.checkpoint"):
        editor.edit(REQ, "mend", {"checkpoint": "/no/such/folder"})
    with pytest.raises(EditError, match="no bundled editor was trained for this model"):
        editor.edit(REQ, "mend")


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_batch_edit_moves_every_target_and_rolls_back(model_type):
    from editmethods.scoring import score_targets

    model = tiny_model(model_type)
    editor = make_editor(model)
    reqs = [REQ, EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")]
    state = state_copy(model)
    before = score_targets(model, editor.tokenizer, [r.prompt for r in reqs], [r.target_text for r in reqs])
    handle = editor.edit(reqs, "mend", {"checkpoint": "untrained", "edit_lr": 0.1})
    after = score_targets(model, editor.tokenizer, [r.prompt for r in reqs], [r.target_text for r in reqs])
    for b, a in zip(before.logprobs, after.logprobs):
        assert float(a.sum()) > float(b.sum())
    editor.rollback(handle)
    assert_same_state(model, state)


def test_train_command_writes_a_checkpoint(tmp_path, data_file):
    from editmethods.cli import build_cli

    model_dir = tmp_path / "tiny-gpt2"
    tiny_model("gpt2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    out = tmp_path / "editor"
    result = CliRunner().invoke(build_cli(), [
        "train", "mend", "--model", str(model_dir), "--data", data_file, "--out", str(out),
        "--steps", "4", "--val-every", "2", "--rank", "4"])
    assert result.exit_code == 0, result.output
    assert "editor written to" in result.output
    config = json.loads((out / CONFIG).read_text())
    assert config["training"]["steps_run"] <= 4
    assert {"efficacy", "paraphrase", "locality"} <= set(config["validation"])


def test_train_group_is_shared_with_other_trainers():
    import click

    from editmethods_mend.commands import register

    cli = click.Group()
    other = click.Group(name="train")
    other.add_command(click.Command("serac"))
    cli.add_command(other)
    register(cli)
    assert set(cli.commands["train"].commands) == {"serac", "mend"}


def test_model_hash_is_the_base_models_while_edits_are_live():
    from editmethods_mend import checkpoint

    model = tiny_model("gpt2")
    base = model_hash(model)
    editor = make_editor(model)
    handle = editor.edit(REQ, "mend", {"checkpoint": "untrained"})
    checkpoint._hash_cache.pop(model, None)  # recompute from the weights as they are now
    assert model_hash(model) == base
    editor.rollback(handle)


def test_trainer_runs_on_the_linear_layout(tmp_path, data_file):
    from editmethods_mend.data import read_cases
    from editmethods_mend.train import TrainConfig, train_editor

    model = tiny_model("llama")
    cases = read_cases(data_file)
    result = train_editor(model, tiny_tokenizer(), BUILTIN["llama"], cases, cases[:2],
                          tmp_path / "llama-editor",
                          TrainConfig(rank=4, steps=3, val_every=3, val_cases=2, norm_warmup=5),
                          progress=False)
    config = json.loads((result.folder / CONFIG).read_text())
    assert {p["layout"] for p in config["params"]} == {"out_in"}
    editor = make_editor(model)
    handle = editor.edit(REQ, "mend", {"checkpoint": str(result.folder)})
    editor.rollback(handle)


def test_reference_hparams_file_loads():
    from importlib import resources

    from editmethods.hparams import load_hparams
    from editmethods_mend.hparams_mend import MENDHyperParams

    path = resources.files("editmethods_mend") / "hparams" / "testbed-gpt2.yaml"
    hp = load_hparams(MENDHyperParams, str(path), method="mend")
    assert hp.checkpoint == "auto" and hp.layers == ()
