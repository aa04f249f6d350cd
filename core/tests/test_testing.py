"""The conformance kit checks what it claims (#14 item 4): it needs pytest only as the
``testing`` extra, builds a tiny model of every architecture the core knows, derives its
checks from the MethodSpec, and its checks pass on a known-good method and catch what they
name (a bias edit on a different base, hparams files left out of a wheel)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
import torch

from editmethods.architectures import BUILTIN
from editmethods.fingerprint import tensor_hash
from editmethods.hookspecs import hookimpl
from editmethods.testing import (
    TINY_MODEL_TYPES,
    AddHParams,
    AddMethod,
    MethodConformance,
    built_wheel_files,
    tiny_model,
    tiny_tokenizer,
)
from editmethods.types import Delta, MethodSpec, Update

CORE = Path(__file__).resolve().parents[1]


def test_importing_the_kit_without_pytest_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["pytest"] = None  # as if pytest were not installed
        from editmethods.tiny import tiny_model  # the helpers need no pytest
        assert tiny_model("gpt2") is not None
        try:
            import editmethods.testing
        except ImportError as exc:
            print(type(exc).__name__, exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingDependencyError")
    assert "pip install 'editmethods[testing]'" in done.stdout
    assert "editmethods.tiny" in done.stdout


def test_core_declares_the_testing_extra():
    project = tomllib.loads((CORE / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["testing"] == ["pytest>=8"]
    assert not any(d.startswith("pytest") for d in project["dependencies"])


def test_a_tiny_model_of_every_builtin_architecture():
    assert set(TINY_MODEL_TYPES) == set(BUILTIN)
    ids = torch.tensor([tiny_tokenizer()("The capital of France is").input_ids])
    for model_type in TINY_MODEL_TYPES:
        model = tiny_model(model_type)
        arch = BUILTIN[model_type]
        assert model.config.model_type == model_type
        assert arch.n_layers(model) == 2
        assert arch.module(model, "mlp_out", 1) is not None
        assert model.get_input_embeddings().weight.shape[1] == 32
        kwargs = {"decoder_input_ids": ids[:, :1]} if model.config.is_encoder_decoder else {}
        assert torch.isfinite(model(input_ids=ids, **kwargs).logits).all()
    with pytest.raises(ValueError, match="no tiny model of type 'falcon'"):
        tiny_model("falcon")


def test_retired_flags_and_unknown_skips_fail_at_class_definition():
    with pytest.raises(TypeError, match="unrelated_logits_exact = False"):
        type("TestOld", (MethodConformance,), {"writes_weights": True})
    with pytest.raises(TypeError, match="skip_model_types"):
        type("TestOld", (MethodConformance,), {"model_types": ("gpt2",)})
    with pytest.raises(TypeError, match="no such check"):
        type("TestTypo", (MethodConformance,), {"skip_checks": {"test_aply[gpt2]": "typo"}})
    with pytest.raises(TypeError, match="model type must be one of"):
        type("TestTypo", (MethodConformance,),
             {"skip_checks": {"test_apply_changes_prediction[gpt-2]": "typo"}})


class _GPT2Only(AddMethod):
    @hookimpl
    def register_methods(self, register):
        register(MethodSpec(name=self.name, hparams_class=AddHParams, description="test",
                            model_types=("gpt2", "falcon")))


def test_model_types_come_from_the_method_spec():
    class Kit(MethodConformance):
        method = "add"
        plugin = _GPT2Only()
        skip_model_types = {"gpt2": "left out on purpose"}

    kit = Kit()
    assert "does not declare llama (model_types=('gpt2', 'falcon'))" in kit.model_type_skip("llama")
    assert kit.model_type_skip("gpt2") == "gpt2 left out by Kit: left out on purpose"
    with pytest.raises(pytest.skip.Exception, match="falcon: the kit has no tiny model"):
        kit.test_declared_model_types_have_tiny_models()

    class Everything(MethodConformance):
        method = "add"
        plugin = AddMethod()

    assert all(Everything().model_type_skip(t) is None for t in TINY_MODEL_TYPES)


class TestAddMethodConforms(MethodConformance):
    """The kit on the core's own test double: every mechanical check passes on every model
    type (AddMethod adds a constant to a weight: it has no effect to check)."""

    method = "add"
    plugin = AddMethod()
    skip_checks = {
        "test_apply_changes_prediction": "AddMethod adds a constant: no effect to check",
        "test_unrelated_prompts_move_less_than_the_edited_one": "AddMethod adds a constant",
        "test_batch_of_two_moves_both_targets": "AddMethod adds a constant",
        "test_entry_point_names_the_method": "a test double, no distribution of its own",
    }


class _BiasAdd(AddMethod):
    """Adds to the MLP output *bias*: zero in every seed of a tiny model."""

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        deltas = []
        for layer in location.layers:
            name = architecture.path("mlp_out", layer) + ".bias"
            deltas.append(Delta(param=name, dense=torch.full(model.get_parameter(name).shape, 0.5)))
        return Update(method=method, deltas=tuple(deltas))


def test_the_different_base_check_tells_a_bias_edit_apart(tmp_path):
    # why the check perturbs rather than re-seeds: a re-seeded model has the same biases
    bias = "transformer.h.0.mlp.c_proj.bias"
    assert tensor_hash(tiny_model("gpt2").get_parameter(bias)) == tensor_hash(
        tiny_model("gpt2", seed=1).get_parameter(bias))

    class Kit(MethodConformance):
        method = "add"
        plugin = _BiasAdd()

    kit = Kit()
    editor = kit.make_editor("gpt2")
    kit.test_saved_edit_refused_on_a_different_base(editor, tmp_path)
    kit.test_saved_edit_reproduces_the_edit_on_a_fresh_copy(kit.make_editor("gpt2"), tmp_path / "b")


def _source_tree(root: Path, package_data: bool) -> Path:
    (root / "src" / "pkg_x" / "hparams").mkdir(parents=True)
    (root / "src" / "pkg_x" / "__init__.py").write_text("")
    (root / "src" / "pkg_x" / "hparams" / "a.yaml").write_text("layers: [0]\n")
    data = '\n[tool.setuptools.package-data]\npkg_x = ["hparams/*.yaml"]\n' if package_data else ""
    (root / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "pkg-x"
        version = "0.1.0"

        [tool.setuptools.packages.find]
        where = ["src"]
    """) + data)
    return root


@pytest.mark.parametrize("package_data", [True, False])
def test_the_wheel_check_sees_missing_package_data(tmp_path, package_data):
    source = _source_tree(tmp_path / "pkg", package_data)
    (tmp_path / "work").mkdir()
    files = built_wheel_files(source, tmp_path / "work")
    assert "pkg_x/__init__.py" in files
    assert ("pkg_x/hparams/a.yaml" in files) is package_data
    assert sorted(p.name for p in source.iterdir()) == ["pyproject.toml", "src"]  # no build/
    assert not list((source / "src").glob("*.egg-info"))
