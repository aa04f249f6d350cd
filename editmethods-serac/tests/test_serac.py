"""SERAC specifics: checkpoints tied to their base model, the scope classifier, the memory,
the trainer's command."""

import json
from pathlib import Path

import click
import pytest
import torch

import editmethods_serac.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import EditmethodsError
from editmethods.plugins import Plugins
from editmethods.testing import tiny_model, tiny_tokenizer
from editmethods_serac.checkpoint import (
    CheckpointError,
    base_fingerprint,
    read_meta,
    resolve_checkpoint,
)
from editmethods_serac.data import read_cases
from editmethods_serac.method import EditMemory
from editmethods_serac.train import TrainConfig, train_serac, tune_threshold

DATA = Path(__file__).parent / "data" / "counterfact-mini.json"
FRANCE = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
MILES = EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")


def make_editor(seed=0):
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_serac.plugin, name="serac")
    return Editor(tiny_model("gpt2", seed=seed), tiny_tokenizer(), plugins=plugins)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serac") / "ck"
    train_serac(tiny_model("gpt2"), tiny_tokenizer(), read_cases(DATA), folder,
                TrainConfig(steps=20, batch_size=8, lr=3e-3), progress=False)
    return folder


def test_checkpoint_is_safetensors_and_json_tied_to_its_base(checkpoint):
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "config.json").is_file()
    meta = read_meta(checkpoint)
    assert meta["base_fingerprint"] == base_fingerprint(tiny_model("gpt2"))
    assert 0 < meta["threshold"] < 1 and meta["train"]["steps"] == 20
    assert not list(checkpoint.glob("*.bin")) and not list(checkpoint.glob("*.pt"))


def test_checkpoint_for_another_base_model_is_refused_with_both_hashes(checkpoint):
    other = tiny_model("gpt2", seed=1)
    mine, theirs = base_fingerprint(other), read_meta(checkpoint)["base_fingerprint"]
    with pytest.raises(CheckpointError, match="another base model") as info:
        resolve_checkpoint(str(checkpoint), other)
    assert mine[:16] in str(info.value) and theirs[:16] in str(info.value)
    editor = make_editor(seed=1)
    state = {k: v.clone() for k, v in editor.model.state_dict().items()}
    with pytest.raises(EditmethodsError, match="another base model"):
        editor.edit(FRANCE, "serac", {"checkpoint": str(checkpoint)})
    assert all(torch.equal(v, editor.model.state_dict()[k]) for k, v in state.items())
    assert not editor.model._forward_hooks


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_default_training_writes_attention_only(arch, tmp_path):
    """The facts a base model keeps in its embeddings and MLPs stay as they were; only the
    attention blocks learn to read the edit."""
    base = tiny_model(arch)
    folder = train_serac(base, tiny_tokenizer(), read_cases(DATA), tmp_path / "ck",
                         TrainConfig(steps=5, batch_size=8, lr=3e-3), progress=False)
    from editmethods_serac.checkpoint import load_counterfactual

    cf = load_counterfactual(folder, torch.device("cpu"))
    trained = {n for n, p in base.named_parameters()
               if not torch.allclose(p.float(), cf.get_parameter(n).float(), atol=1e-3)}
    assert trained, "nothing trained"
    attn = "attn" if arch == "gpt2" else "self_attn"
    assert all(f".{attn}." in n for n in trained), sorted(trained)


def test_trainable_all_trains_mlps_too(tmp_path):
    from editmethods_serac.train import trainable_parameters

    model = tiny_model("gpt2")
    every = trainable_parameters(model, "all")
    attention = trainable_parameters(model, "attention")
    assert len(every) == len(list(model.parameters())) and 0 < len(attention) < len(every)
    with pytest.raises(ValueError, match="trainable"):
        TrainConfig(trainable="mlp")


def test_learned_scope_classifier_is_saved_and_used_by_default(checkpoint):
    from editmethods_serac.scope import SCOPE_FILE, LearnedScope

    meta = read_meta(checkpoint)
    assert meta["scope_classifier"]["kind"] == "learned" and (checkpoint / SCOPE_FILE).is_file()
    scope = LearnedScope.load(checkpoint / SCOPE_FILE)
    q, e = torch.nn.functional.normalize(torch.randn(3, scope.dim), dim=-1), \
        torch.nn.functional.normalize(torch.randn(2, scope.dim), dim=-1)
    probs = scope.score(q, e)
    assert probs.shape == (3, 2) and bool(((probs >= 0) & (probs <= 1)).all())

    editor = make_editor()
    handle = editor.edit(FRANCE, "serac", {"checkpoint": str(checkpoint)})
    assert handle.update.meta["classifier"] == "learned" and handle.update.meta["threshold"] == 0.9
    editor.rollback(handle)
    handle = editor.edit(FRANCE, "serac", {"checkpoint": str(checkpoint), "classifier": "cosine"})
    assert handle.update.meta["classifier"] == "cosine"
    assert handle.update.meta["threshold"] == meta["threshold"]
    editor.rollback(handle)


def test_learned_classifier_needs_a_trained_checkpoint():
    editor = make_editor()
    before = {k: v.clone() for k, v in editor.model.state_dict().items()}
    with pytest.raises(EditmethodsError, match="classifier: cosine"):
        editor.edit(FRANCE, "serac", {"checkpoint": "base", "classifier": "learned"})
    assert all(torch.equal(before[k], v) for k, v in editor.model.state_dict().items())
    with pytest.raises(EditmethodsError, match="classifier"):
        editor.edit(FRANCE, "serac", {"checkpoint": "base", "classifier": "knn"})


def test_no_bundled_checkpoint_says_how_to_train_one():
    with pytest.raises(EditmethodsError, match="editmethods train serac"):
        make_editor().edit(FRANCE, "serac", {})


def test_threshold_tuning_separates_scope():
    scope = tune_threshold(read_cases(DATA))
    assert scope["balanced_accuracy"] > 0.5
    assert 0.05 <= scope["threshold"] <= 0.95


def test_memory_routes_in_scope_inputs_and_rollback_removes_one(checkpoint):
    editor = make_editor()
    h1 = editor.edit(FRANCE, "serac", {"checkpoint": str(checkpoint), "threshold": 0.75})
    h2 = editor.edit(MILES, "serac", {"checkpoint": str(checkpoint), "threshold": 0.75})
    memory = EditMemory.find(editor.model)
    routes = memory.route(["The capital of France is", "Miles Davis plays the", "Toko Yasuda plays the"])
    assert routes[0].label == h1.edit_id and routes[1].label == h2.edit_id and routes[2] is None
    assert routes[0].model is not None and routes[0].model is not editor.model
    editor.rollback(h1)
    routes = memory.route(["The capital of France is", "Miles Davis plays the"])
    assert routes[0] is None and routes[1].label == h2.edit_id
    editor.rollback(h2)
    assert EditMemory.find(editor.model) is None and not editor.model._forward_hooks


def test_train_command_shares_the_train_group():
    cli = click.Group(name="editmethods")
    other = click.Group(name="train")
    other.add_command(click.Command("mend", callback=lambda: None))
    cli.add_command(other)
    editmethods_serac.plugin.register_commands(cli)
    editmethods_serac.plugin.register_commands(cli)  # idempotent
    assert set(cli.commands["train"].commands) == {"mend", "serac"}
    fresh = click.Group(name="editmethods")
    editmethods_serac.plugin.register_commands(fresh)
    assert "serac" in fresh.commands["train"].commands


def test_train_command_writes_a_checkpoint(tmp_path):
    from click.testing import CliRunner

    model_dir = tmp_path / "base"
    tiny_model("gpt2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    cli = click.Group(name="editmethods")
    editmethods_serac.plugin.register_commands(cli)
    result = CliRunner().invoke(cli, ["train", "serac", "--model", str(model_dir), "--data", str(DATA),
                                      "--out", str(tmp_path / "ck"), "--steps", "3", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ck" / "serac.json").read_text())["train"]["steps"] == 3


def test_validation_ranks_reading_the_edit_before_retention():
    from editmethods_serac.train import selection_key

    untrained = {"in_scope": 0.7633, "out_of_scope": 0.555, "score": 0.659}
    trained = {"in_scope": 0.9967, "out_of_scope": 0.265, "score": 0.631}
    overfit = {"in_scope": 1.0, "out_of_scope": 0.13, "score": 0.565}
    states = {"untrained": untrained, "trained": trained, "overfit": overfit}
    # in-scope ties at 0.01 go to the state that keeps more of the other facts
    assert max(states, key=lambda k: selection_key(states[k])) == "trained"
    # no out-of-scope cases: in-scope alone decides
    assert selection_key({"in_scope": 0.5}) == (0.5, 0.0)
