"""ROME hyper-parameters: shipped files load, EasyEdit's files load as they are, bad values
are refused with their paths."""

import warnings

import pytest

from editmethods.errors import HyperParamsError
from editmethods.hparams import load_hparams
from editmethods_rome import HPARAMS_DIR, ROMEHyperParams, hparams_path

# The text of EasyEdit's hparams/ROME/gpt2-xl.yaml (zjunlp/EasyEdit), key for key.
EASYEDIT_GPT2_XL = """\
alg_name: "ROME"
model_name: "./hugging_cache/gpt2-xl"
stats_dir: "./data/stats"
device: 0
layers: [17]
fact_token: "subject_last"
v_num_grad_steps: 20
v_lr: 5e-1
v_loss_layer: 47
v_weight_decay: 0.5
clamp_norm_factor: 4
kl_factor: 0.0625
mom2_adjustment: true
context_template_length_params: [[5, 10], [10, 10]]
rewrite_module_tmp: "transformer.h.{}.mlp.c_proj"
layer_module_tmp: "transformer.h.{}"
mlp_module_tmp: "transformer.h.{}.mlp"
attn_module_tmp: "transformer.h.{}.attn"
ln_f_module: "transformer.ln_f"
lm_head_module: "transformer.wte"
mom2_dataset: "wikipedia"
mom2_n_samples: 100000
mom2_dtype: "float32"
"""


def test_easyedit_file_loads_as_is(tmp_path):
    path = tmp_path / "gpt2-xl.yaml"
    path.write_text(EASYEDIT_GPT2_XL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hp = load_hparams(ROMEHyperParams, path, method="rome")
    assert hp.layers == (17,) and hp.v_lr == 0.5 and hp.clamp_norm_factor == 4
    assert hp.context_template_length_params == ((5, 10), (10, 10))
    assert hp.mom2_adjustment and hp.mom2_dtype == "float32"
    dropped = " ".join(str(w.message) for w in caught)
    assert "model_name" in dropped and "stats_dir" in dropped and "device" in dropped


@pytest.mark.parametrize("path", sorted(HPARAMS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_files_load(path):
    hp = load_hparams(ROMEHyperParams, path, method="rome")
    assert len(hp.layers) == 1


def test_shipped_models():
    for name in ("gpt2-xl", "gpt-j-6b", "llama-2-7b", "llama-3-8b", "qwen2.5-7b", "mistral-7b",
                 "testbed-gpt2", "testbed-llama"):
        assert hparams_path(name).is_file()
    with pytest.raises(FileNotFoundError, match="shipped"):
        hparams_path("no-such-model")


def test_bad_values_reported_with_paths():
    with pytest.raises(HyperParamsError) as info:
        load_hparams(ROMEHyperParams, {"v_lr": -1, "layers": [1, 2], "kl_factr": 0.1})
    text = str(info.value)
    assert "kl_factr" in text and "v_lr" in text and "layers" in text


def test_variant_switches():
    assert load_hparams(ROMEHyperParams, {}).effective_variant == "consistent"
    assert load_hparams(ROMEHyperParams, {"original_implementation": True}).effective_variant == "original"
    assert load_hparams(ROMEHyperParams, {"variant": "original"}).effective_variant == "original"
