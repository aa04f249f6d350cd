"""Strict hyper-parameter loading: every problem at once, with its path."""

from __future__ import annotations

import attrs
import pytest

from editmethods import HyperParams, HyperParamsError, load_hparams
from editmethods.hparams import save_hparams


@attrs.frozen
class RomeLike(HyperParams):
    layers: tuple[int, ...] = attrs.field(validator=attrs.validators.min_len(1))
    v_lr: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    v_num_grad_steps: int = 20
    kl_factor: float = 0.0625


def test_every_problem_is_reported_with_its_path(tmp_path):
    path = tmp_path / "rome.yaml"
    path.write_text("layers: [5]\nv_lr: -1.0\nkl_factr: 0.1\nv_num_grad_steps: many\n")
    with pytest.raises(HyperParamsError) as info:
        load_hparams(RomeLike, path)
    text = str(info.value)
    assert "3 problems in rome.yaml" in text
    assert "extra fields found (kl_factr) @ rome.yaml" in text
    assert ("'v_num_grad_steps' must be an integer, got the string 'many': write a whole number, "
            "without quotes @ rome.yaml.v_num_grad_steps") in text
    assert "'v_lr' must be > 0: -1.0 @ rome.yaml.v_lr" in text


def test_missing_key_and_json(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('{"v_lr": 0.1}')
    with pytest.raises(HyperParamsError, match=r"required field missing @ h.json.layers"):
        load_hparams(RomeLike, path)


def test_runtime_keys_are_dropped_with_a_warning_and_alg_name_is_checked(tmp_path):
    path = tmp_path / "easyedit.yaml"
    path.write_text("alg_name: ROME\nmodel_name: gpt2-xl\ndevice: 0\nstats_dir: ./data/stats\nlayers: [17]\n")
    with pytest.warns(UserWarning, match="'device' sets the run"):
        hp = load_hparams(RomeLike, path, method="rome")
    assert hp.layers == (17,)
    with pytest.raises(HyperParamsError, match="alg_name 'ROME' does not match method 'memit'"):
        load_hparams(RomeLike, path, method="memit")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("layers: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(HyperParamsError, match="not valid YAML"):
        load_hparams(RomeLike, path)


def test_round_trip_overrides_and_wrong_class(tmp_path):
    hp = load_hparams(RomeLike, {"layers": [1, 2]}, v_lr=0.3)
    assert hp == RomeLike(layers=(1, 2), v_lr=0.3)
    save_hparams(hp, tmp_path / "out.yaml")
    assert load_hparams(RomeLike, tmp_path / "out.yaml") == hp
    assert load_hparams(RomeLike, hp) is hp

    @attrs.frozen
    class Other(HyperParams):
        x: int = 1

    with pytest.raises(HyperParamsError, match="expected hyper-parameters of type RomeLike"):
        load_hparams(RomeLike, Other())


def test_easyedit_ft_file_loads_as_is(tmp_path):
    from editmethods_ft import FTHyperParams

    path = tmp_path / "gpt2-xl.yaml"
    path.write_text(
        "alg_name: \"FT\"\nmodel_name: \"./hugging_cache/gpt2-xl\"\ndevice: 0\nlayers: [0]\n"
        "num_steps: 25\nbatch_size: 1\nmax_length: 40\nlr: 5e-4\nweight_decay: 0\nkl_factor: 0\n"
        "norm_constraint: 5e-4\nobjective_optimization: \"prompt_last\"\n"
        "rewrite_module_tmp: \"transformer.h.{}.mlp.c_proj\"\nlayer_module_tmp: \"transformer.h.{}\"\n"
        "mlp_module_tmp: \"transformer.h.{}.mlp\"\nattn_module_tmp: \"transformer.h.{}.attn\"\n"
        "ln_f_module: \"transformer.ln_f\"\nlm_head_module: \"transformer.wte\"\nmodel_parallel: false\n"
    )
    with pytest.warns(UserWarning):
        hp = load_hparams(FTHyperParams, path, method="ft")
    assert hp.objective == "prompt_last" and hp.norm_constraint == 5e-4 and hp.lr == 5e-4
