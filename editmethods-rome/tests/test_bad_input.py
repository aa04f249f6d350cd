"""Bad input is refused with a clear error, and the model is left exactly as it was."""

import warnings

import pytest

import editmethods_rome.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import EditmethodsError, RequestError
from editmethods.plugins import Plugins
from editmethods.testing import CORPUS, assert_same_state, state_copy, tiny_model, tiny_tokenizer
from editmethods.toolkit.stats import StatisticsError, register_corpus

register_corpus("bad-input-corpus", lambda: sorted(set(CORPUS)))
HP = {"layers": [0], "v_lr": 0.3, "v_num_grad_steps": 5, "clamp_norm_factor": 20.0,
      "v_weight_decay": 0.0, "mom2_ridge": 0.1, "mom2_dataset": "bad-input-corpus",
      "mom2_n_samples": 100, "context_template_length_params": [[5, 2]]}
REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")


@pytest.fixture
def editor():
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_rome.plugin, name="rome")
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)


def _refused(editor, request, hp, error=EditmethodsError, match=None):
    state = state_copy(editor.model)
    with pytest.raises(error, match=match):
        editor.edit(request, "rome", hp)
    assert_same_state(editor.model, state)
    assert editor.edits == []


def test_subject_split_differently_in_context(editor):
    req = EditRequest(prompt="The capital of Franceland is", subject="France", target_new="Rome")
    _refused(editor, req, HP, RequestError, match="tokenizes as")


def test_layer_outside_model(editor):
    _refused(editor, REQ, dict(HP, layers=[7]), match="outside the model")


def test_nan_during_value_optimization(editor):
    _refused(editor, REQ, dict(HP, v_lr=1e38, clamp_norm_factor=1e38), match="NaN")


def test_singular_statistics_say_how_many_samples(editor):
    _refused(editor, REQ, dict(HP, mom2_ridge=0.0, mom2_n_samples=2), StatisticsError,
             match="samples are needed")


def test_empty_target_after_tokenization(editor):
    class Dropping:
        """A tokenizer that loses the target's characters (as some vocabularies do)."""

        def __init__(self, inner):
            self.inner = inner

        def __call__(self, text, **kw):
            return self.inner(text.replace(" Zq", ""), **kw)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    editor.tokenizer = Dropping(editor.tokenizer)
    req = EditRequest(prompt="The capital of France is", subject="France", target_new="Zq")
    _refused(editor, req, HP, RequestError, match="empty after tokenization")


def test_loss_layer_of_another_depth_only_warns(editor):
    """EasyEdit's files set v_loss_layer for their model's depth: they run, with a warning
    that the loss is read at this model's last layer."""
    with pytest.warns(UserWarning, match=r"v_loss_layer=31 is not this model's last layer \(1\)"):
        handle = editor.edit(REQ, "rome", dict(HP, v_loss_layer=31))
    assert handle.update.deltas
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*v_loss_layer")  # the right value is silent
        editor.rollback(handle)
        editor.edit(REQ, "rome", dict(HP, v_loss_layer=1))


def test_template_of_another_architecture(editor):
    _refused(editor, REQ, dict(HP, rewrite_module_tmp="model.layers.{}.mlp.down_proj"),
             match="not in the model")


def test_saved_rome_edit_is_two_vectors(editor, tmp_path):
    handle = editor.edit(REQ, "rome", HP)
    (delta,) = handle.update.deltas
    assert delta.dense is None and delta.left.shape[1] == 1 and delta.right.shape[0] == 1
    folder = editor.save_edit(handle, tmp_path / "edit")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    param = editor.model.get_parameter(delta.param)
    assert size < param.numel() * 4  # smaller than the dense matrix it stands for


def test_locate_by_causal_tracing(editor):
    from editmethods.hparams import load_hparams
    from editmethods_rome import ROMEHyperParams
    from editmethods_rome.method import locate_rome

    hp = load_hparams(ROMEHyperParams, dict(HP, locate="causal_trace"))
    loc = locate_rome(editor.model, editor.tokenizer, [REQ], hp, editor.architecture)
    assert loc.info["source"] == "causal_trace"
    assert 0 <= loc.layers[0] < editor.architecture.n_layers(editor.model)
    assert loc.modules == (f"transformer.h.{loc.layers[0]}.mlp.c_proj",)
