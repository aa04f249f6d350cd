"""MEMIT hyper-parameters: shipped files and EasyEdit's files load; λ per dimension."""

import warnings

import pytest

from editmethods.errors import HyperParamsError
from editmethods.hparams import load_hparams
from editmethods_memit import HPARAMS_DIR, MEMITHyperParams, hparams_path

# The text of EasyEdit's hparams/MEMIT/gpt2-xl.yaml (zjunlp/EasyEdit), key for key.
EASYEDIT_GPT2_XL = """\
alg_name: "MEMIT"
model_name: "./hugging_cache/gpt2-xl"
stats_dir: "./data/stats"
device: 0
layers: [13, 14, 15, 16, 17]
clamp_norm_factor: 0.75
layer_selection: "all"
fact_token: "subject_last"
v_num_grad_steps: 20
v_lr: 5e-1
v_loss_layer: 47
v_weight_decay: 0.5
kl_factor: 0.0625
mom2_adjustment: true
mom2_update_weight: 20000
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hp = load_hparams(MEMITHyperParams, path, method="memit")
    assert hp.layers == (13, 14, 15, 16, 17) and hp.mom2_update_weight == 20000
    assert hp.lam(6400) == 20000


@pytest.mark.parametrize("path", sorted(HPARAMS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_files_load(path):
    load_hparams(MEMITHyperParams, path, method="memit")


def test_shipped_models():
    for name in ("gpt2-xl", "gpt-j-6b", "llama-2-7b", "llama-3-8b", "qwen2.5-7b", "mistral-7b",
                 "testbed-gpt2", "testbed-llama"):
        assert hparams_path(name).is_file()


def test_lambda_per_dimension_and_bad_layers():
    hp = load_hparams(MEMITHyperParams, {"mom2_update_weight_per_dim": 0.5})
    assert hp.lam(512) == 256
    with pytest.raises(HyperParamsError, match="increasing"):
        load_hparams(MEMITHyperParams, {"layers": [3, 2]})
    with pytest.raises(HyperParamsError, match="layer_selection"):
        load_hparams(MEMITHyperParams, {"layer_selection": "random"})
