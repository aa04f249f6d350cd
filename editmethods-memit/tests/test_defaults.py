"""MEMIT's defaults for a model without shipped hparams: layers from the depth, λ from λ/d_in,
and a warning when a file's absolute λ does not fit this model."""

import warnings

import pytest
import torch
import transformers as tf

import editmethods_memit.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import HyperParamsError
from editmethods.hparams import load_hparams
from editmethods.plugins import Plugins
from editmethods.testing import CORPUS, tiny_tokenizer
from editmethods.toolkit.stats import register_corpus
from editmethods_memit import MEMITHyperParams
from editmethods_memit.hparams_memit import DEFAULT_LAMBDA_PER_DIM, lambda_for
from editmethods_memit.method import locate_memit

register_corpus("memit-defaults-corpus", lambda: sorted(set(CORPUS)))
REQS = [EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
        EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")]
HP = {"v_lr": 0.3, "v_num_grad_steps": 3, "clamp_norm_factor": 20.0, "v_weight_decay": 0.0,
      "mom2_ridge": 0.1, "mom2_update_weight_per_dim": 0.01, "mom2_n_samples": 39,
      "mom2_dataset": "memit-defaults-corpus", "context_template_length_params": [[5, 2]]}

# The text of EasyEdit's hparams/MEMIT/llama-7b.yaml (zjunlp/EasyEdit), key for key.
EASYEDIT_LLAMA = """\
alg_name: "MEMIT"
model_name: "./hugging_cache/llama-2-7b"
stats_dir: "./data/stats"
device: 0
layers: [4, 5, 6, 7, 8]
clamp_norm_factor: 4
layer_selection: "all"
fact_token: "subject_last"
v_num_grad_steps: 25
v_lr: 5e-1
v_loss_layer: 31
v_weight_decay: 1e-3
kl_factor: 0.0625
mom2_adjustment: true
mom2_update_weight: 15000
rewrite_module_tmp: "model.layers.{}.mlp.down_proj"
layer_module_tmp: "model.layers.{}"
mlp_module_tmp: "model.layers.{}.mlp"
attn_module_tmp: "model.layers.{}.self_attn"
ln_f_module: "model.norm"
lm_head_module: "lm_head"
mom2_dataset: "wikipedia"
mom2_n_samples: 100000
mom2_dtype: "float32"
model_parallel: false
"""


def _editor(n_layer: int) -> Editor:
    torch.manual_seed(0)
    config = tf.GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, n_positions=64,
                           vocab_size=tiny_tokenizer().vocab_size + 2, pad_token_id=0,
                           eos_token_id=1, bos_token_id=1, initializer_range=0.2)
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_memit.plugin, name="memit")
    return Editor(tf.GPT2LMHeadModel(config).eval(), tiny_tokenizer(), plugins=plugins)


def test_lambda_precedence():
    assert load_hparams(MEMITHyperParams, {"mom2_update_weight_per_dim": 0.5}).lam(1536) == 768
    assert load_hparams(MEMITHyperParams, {"mom2_update_weight": 15000}).lam(1536) == 15000
    default = load_hparams(MEMITHyperParams, {})
    assert default.mom2_update_weight is None and default.mom2_update_weight_per_dim is None
    assert default.lam(1536) == DEFAULT_LAMBDA_PER_DIM * 1536
    with pytest.raises(HyperParamsError, match="set one of mom2_update_weight.*not both"):
        load_hparams(MEMITHyperParams, {"mom2_update_weight": 15000,
                                        "mom2_update_weight_per_dim": 1.0})


def test_absolute_lambda_far_from_this_model_warns_with_the_per_dim_value(tmp_path):
    path = tmp_path / "llama-7b.yaml"
    path.write_text(EASYEDIT_LLAMA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hp = load_hparams(MEMITHyperParams, path, method="memit")  # EasyEdit's file loads
    assert hp.layers == (4, 5, 6, 7, 8) and hp.mom2_update_weight == 15000
    with pytest.warns(UserWarning) as caught:
        assert lambda_for(hp, 1536) == 15000  # used as given
    text = str(caught[0].message)
    assert "λ/d_in = 9.77" in text and "d_in=1536" in text
    assert "1.36 on LLaMA-2-7B" in text and "λ = 2093" in text
    assert "mom2_update_weight_per_dim: 1.36" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where it was tuned, and any per-dim value: silent
        lambda_for(hp, 11008)
        lambda_for(load_hparams(MEMITHyperParams, {"mom2_update_weight": 20000}), 6400)  # GPT-2 XL
        lambda_for(load_hparams(MEMITHyperParams, {"mom2_update_weight_per_dim": 50.0}), 1536)
        lambda_for(load_hparams(MEMITHyperParams, {}), 1536)


def test_unset_layers_choose_a_window_by_depth():
    editor = _editor(12)
    hp = load_hparams(MEMITHyperParams, HP)
    with pytest.warns(UserWarning, match=r"chose layers 1-4 of this model's 12 by depth.*"
                                         r"layers: \[1, 2, 3, 4\]"):
        loc = locate_memit(editor.model, editor.tokenizer, REQS, hp, editor.architecture)
    assert loc.layers == (1, 2, 3, 4) and loc.info["source"] == "depth"
    with pytest.warns(UserWarning, match="chose layers 1-4"):
        handle = editor.edit(REQS, "memit", HP)
    assert handle.update.meta["layers"] == [1, 2, 3, 4]
    assert [d.param for d in handle.update.deltas] == [
        f"transformer.h.{i}.mlp.c_proj.weight" for i in (1, 2, 3, 4)]
