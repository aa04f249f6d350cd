"""Safe defaults for a model without shipped hparams: layers from the model's depth, EasyEdit's
files for other depths, and statistics without the internet (model-samples, npz files)."""

import warnings

import numpy as np
import pytest
import torch
import transformers as tf

import editmethods_rome.plugin
from editmethods import Editor, EditRequest
from editmethods.hparams import load_hparams, save_hparams
from editmethods.plugins import Plugins
from editmethods.testing import CORPUS, tiny_model, tiny_tokenizer
from editmethods.toolkit.stats import register_corpus
from editmethods.toolkit.tracing import trace
from editmethods_rome import ROMEHyperParams
from editmethods_rome.depth import memit_layers, rome_layer
from editmethods_rome.method import locate_rome

register_corpus("defaults-corpus", lambda: sorted(set(CORPUS)))
REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
HP = {"v_lr": 0.3, "v_num_grad_steps": 3, "clamp_norm_factor": 20.0, "v_weight_decay": 0.0,
      "mom2_ridge": 0.1, "mom2_dataset": "defaults-corpus", "mom2_n_samples": 39,
      "context_template_length_params": [[5, 2]]}

# (model, layers, ROME's published layer, MEMIT's published layers or None)
PUBLISHED = [("gpt-j-6b", 28, 5, range(3, 9)), ("llama-2-7b", 32, 5, range(4, 9)),
             ("llama-3-8b / mistral-7b", 32, 5, range(4, 9)), ("qwen2.5-7b", 28, 5, range(4, 9)),
             ("smollm2-135m (measured)", 30, 5, None)]


def _deep_gpt2(n_layer: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = tf.GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, n_positions=64,
                           vocab_size=tiny_tokenizer().vocab_size + 2, pad_token_id=0,
                           eos_token_id=1, bos_token_id=1, initializer_range=0.2)
    return tf.GPT2LMHeadModel(config).eval()


def _editor(model=None) -> Editor:
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_rome.plugin, name="rome")
    return Editor(model if model is not None else tiny_model("gpt2"), tiny_tokenizer(),
                  plugins=plugins)


@pytest.mark.parametrize("name,n,rome,memit", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_depth_rule_reproduces_the_published_layers(name, n, rome, memit):
    assert rome_layer(n) == rome
    window = memit_layers(n)
    assert rome in window and len(window) == 5
    if memit is not None:
        assert set(window) <= set(memit)


def test_depth_rule_on_any_depth():
    assert rome_layer(48) == 8  # GPT-2 XL's published 17 is not reproduced (see depth.py)
    for n in range(1, 100):
        layer, window = rome_layer(n), memit_layers(n)
        assert 0 <= layer <= max(0, n - 2)  # never the last layer of a model with two or more
        assert list(window) == list(range(window[0], window[-1] + 1))  # consecutive
        assert 1 <= len(window) <= 5 and window[-1] <= max(0, n - 2)
    assert memit_layers(6) == (0, 1) and memit_layers(2) == (0,)


def test_unset_layers_choose_by_depth_and_say_so():
    hp = load_hparams(ROMEHyperParams, HP)
    assert hp.layers is None and hp.layer is None
    editor = _editor(_deep_gpt2(12))
    with pytest.warns(UserWarning, match=r"chose layer 2 of this model's 12 by depth.*"
                                         r"layers: \[2\].*causal_trace"):
        loc = locate_rome(editor.model, editor.tokenizer, [REQ], hp, editor.architecture)
    assert loc.layers == (2,) and loc.modules == ("transformer.h.2.mlp.c_proj",)
    assert loc.info["source"] == "depth"
    with pytest.warns(UserWarning, match="chose layer 2"):
        handle = editor.edit(REQ, "rome", HP)
    assert handle.location.layers == (2,) and handle.update.meta["layer"] == 2
    with warnings.catch_warnings():  # layers given: no warning
        warnings.filterwarnings("error", message=".*by depth")
        editor.rollback(handle)
        assert editor.edit(REQ, "rome", dict(HP, layers=[3])).location.layers == (3,)


def test_unset_layers_round_trip(tmp_path):
    hp = load_hparams(ROMEHyperParams, {})
    save_hparams(hp, tmp_path / "rome.yaml")
    assert load_hparams(ROMEHyperParams, tmp_path / "rome.yaml").layers is None
    assert load_hparams(ROMEHyperParams, {"layers": None}).layers is None


# The text of EasyEdit's hparams/ROME/llama-7b.yaml (zjunlp/EasyEdit), key for key.
EASYEDIT_LLAMA = """\
alg_name: "ROME"
model_name: "./hugging_cache/llama-2-7b"
stats_dir: "./data/stats"
device: 0
layers: [5]
fact_token: "subject_last"
v_num_grad_steps: 25
v_lr: 5e-1
v_loss_layer: 31
v_weight_decay: 1e-3
clamp_norm_factor: 4
kl_factor: 0.0625
mom2_adjustment: false
context_template_length_params: [[5, 10], [10, 10]]
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
fp16: false
"""


def test_easyedit_file_of_another_depth_runs_with_a_warning(tmp_path):
    """EasyEdit's LLaMA-2-7B file (v_loss_layer 31) on a LLaMA of 8 layers: it runs, and says
    the loss is read at layer 7."""
    path = tmp_path / "llama-7b.yaml"
    path.write_text(EASYEDIT_LLAMA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # model_name, device, ... are dropped with a warning
        hp = load_hparams(ROMEHyperParams, path, method="rome")
    torch.manual_seed(0)
    config = tf.LlamaConfig(num_hidden_layers=8, hidden_size=32, num_attention_heads=2,
                            num_key_value_heads=2, intermediate_size=64,
                            max_position_embeddings=64, vocab_size=tiny_tokenizer().vocab_size + 2,
                            pad_token_id=0, eos_token_id=1, bos_token_id=1, initializer_range=0.2)
    editor = _editor(tf.LlamaForCausalLM(config).eval())
    hp = load_hparams(ROMEHyperParams, hp, v_num_grad_steps=2,
                      context_template_length_params=((5, 1),))
    with pytest.warns(UserWarning, match=r"v_loss_layer=31 is not this model's last layer \(7\)"):
        handle = editor.edit(REQ, "rome", hp)
    assert handle.location.layers == (5,)


def test_model_samples_corpus_from_hparams():
    """``mom2_dataset: model-samples`` goes through ROME's ordinary statistics call."""
    editor = _editor()
    hp = dict(HP, layers=[0], mom2_n_samples=8,
              mom2_dataset="model-samples:tokens=12,batch_size=8")
    handle = editor.edit(REQ, "rome", hp)
    assert handle.update.deltas


def test_precomputed_npz_from_hparams(tmp_path):
    """``mom2_dataset: npz:FOLDER`` with a file in ROME's layout and format."""
    editor = _editor()
    module = "transformer.h.0.mlp.c_proj"
    rows = []
    for text in sorted(set(CORPUS)):
        with torch.no_grad(), trace(editor.model, [module], retain_input=True) as rec:
            editor.model(input_ids=torch.tensor([editor.tokenizer(text).input_ids]))
        rows.append(rec[module].input[0])
    k = torch.cat(rows).float()
    folder = tmp_path / "tiny" / "wikipedia_stats"
    folder.mkdir(parents=True)
    np.savez(folder / f"{module}_float32_mom2_100000.npz",
             **{"mom2.constructor": "util.runningstats.SecondMoment()", "mom2.count": len(k),
                "mom2.mom2": (k.T @ k).numpy(), "sample_size": 100000})
    from_file = editor.edit(REQ, "rome", dict(HP, layers=[0], mom2_dataset=f"npz:{folder}"))
    editor.rollback(from_file)
    computed = editor.edit(REQ, "rome", dict(HP, layers=[0]))
    # the same statistics (up to float32 accumulation): the same update
    for a, b in zip(from_file.update.deltas, computed.update.deltas):
        torch.testing.assert_close(a.materialize(), b.materialize(), rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_defaults_edit_the_reference_model_offline():
    """The reference GPT-2 with no layer given (the depth rule picks 1 of 6) and statistics
    from its own samples instead of its world's facts: edits still land."""
    testing = pytest.importorskip("editmethods_testbed.testing",
                                  reason="editmethods-testbed is not installed")
    import editmethods_testbed
    from editmethods.evaluation.loaders import load_requests
    from editmethods_rome import hparams_path

    editor = Editor.from_pretrained(testing.require_reference("gpt2"))
    requests = load_requests(editmethods_testbed.data_path("test"), limit=6)
    hp = load_hparams(ROMEHyperParams, hparams_path("testbed-gpt2"), layers=None,
                      mom2_dataset="model-samples", mom2_n_samples=2000)
    eff, neigh = [], []
    for r in requests:
        with pytest.warns(UserWarning, match="chose layer 1 of this model's 6"):
            handle = editor.edit(r, "rome", hp)
        report = editor.evaluate([r], metrics=["efficacy", "neighborhood"])
        eff.append(report["efficacy"].value)
        neigh.append(report["neighborhood"].value)
        editor.rollback(handle)
    print(eff, neigh)
    assert sum(eff) / len(eff) >= 0.9 and sum(neigh) / len(neigh) >= 0.85, (eff, neigh)
