"""Strict hyper-parameters (issue #13, item 5): values are checked, never coerced.

``mom2_adjustment: "false"`` used to load as True, ``layers: "45"`` as (4, 5), ``num_steps: 2.7``
as 2. Each kind of bad value and each kind of bad file is refused here with a HyperParamsError
that names the key (its path), the type expected, the value and type found, and the fix; a
refused hparams never reaches the model.
"""

from __future__ import annotations

import importlib.util
import subprocess
import types
import typing
import warnings
from pathlib import Path

import attrs
import pytest

import editmethods_ft.plugin
import editmethods_rome.plugin
from editmethods import Editor, EditRequest, HyperParams, HyperParamsError, Pipeline, load_hparams
from editmethods.hparams import read_mapping, tuple_of
from editmethods.plugins import Plugins
from editmethods.testing import (
    AddMethod,
    assert_same_state,
    make_plugins,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)
from editmethods_ft import FTHyperParams
from editmethods_ike import IKEHyperParams
from editmethods_lora import LoRAHyperParams
from editmethods_memit import MEMITHyperParams
from editmethods_mend import MENDHyperParams
from editmethods_rome import ROMEHyperParams
from editmethods_serac import SERACHyperParams

ROOT = Path(__file__).resolve().parents[2]


def _template_hparams_class() -> type:
    """The plugin template's class (the template is never installed: load its module by path)."""
    path = ROOT / "plugins" / "_template" / "src" / "editmethods_foo" / "plugin.py"
    spec = importlib.util.spec_from_file_location("_editmethods_foo_plugin_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FooHyperParams


FooHyperParams = _template_hparams_class()

#: Each package that ships hparams files -> its class and method name.
PACKAGES = {
    "editmethods_ike": (IKEHyperParams, "ike"),
    "editmethods_memit": (MEMITHyperParams, "memit"),
    "editmethods_mend": (MENDHyperParams, "mend"),
    "editmethods_rome": (ROMEHyperParams, "rome"),
    "editmethods_serac": (SERACHyperParams, "serac"),
    "editmethods_ft": (FTHyperParams, "ft"),
    "editmethods_lora": (LoRAHyperParams, "lora"),
    "editmethods_foo": (FooHyperParams, "foo"),
}


@attrs.frozen
class Inner:
    steps: int = 1
    scale: float = 1.0


@attrs.frozen
class Outer(HyperParams):
    """Kinds the plugins' classes do not have: a nested class, a list, a union of two kinds."""

    inner: Inner = attrs.field(factory=Inner)
    weights: list[float] = attrs.field(factory=list)
    size: int | str = 1


# -- every kind of bad value ------------------------------------------------------------------
# (id, class, file name, YAML text, key, expected, found, fix): the error must hold the line
# "'<key>' must be <expected>, got <found>: <fix> @ <file name>.<key>".
VALUES = [
    ("bool-quoted-false", ROMEHyperParams, "rome.yaml", 'mom2_adjustment: "false"',
     "mom2_adjustment",
     "a boolean (true or false)", "the string 'false'", "write false without quotes"),
    ("bool-quoted-no", ROMEHyperParams, "rome.yaml", "mom2_adjustment: 'no'", "mom2_adjustment",
     "a boolean (true or false)", "the string 'no'", "write false without quotes"),
    ("bool-quoted-True", ROMEHyperParams, "rome.yaml", 'mom2_adjustment: "True"', "mom2_adjustment",
     "a boolean (true or false)", "the string 'True'", "write true without quotes"),
    ("bool-integer-1", ROMEHyperParams, "rome.yaml", "mom2_adjustment: 1", "mom2_adjustment",
     "a boolean (true or false)", "the integer 1", "write true (a boolean, not a number)"),
    ("bool-integer-0", ROMEHyperParams, "rome.yaml", "mom2_adjustment: 0", "mom2_adjustment",
     "a boolean (true or false)", "the integer 0", "write false (a boolean, not a number)"),
    ("bool-float", ROMEHyperParams, "rome.yaml", "mom2_adjustment: 1.0", "mom2_adjustment",
     "a boolean (true or false)", "the float 1.0", "write true (a boolean, not a number)"),
    ("bool-other-word", ROMEHyperParams, "rome.yaml", "mom2_adjustment: maybe", "mom2_adjustment",
     "a boolean (true or false)", "the string 'maybe'", "write true or false, without quotes"),
    ("bool-null", ROMEHyperParams, "rome.yaml", "mom2_adjustment: null", "mom2_adjustment",
     "a boolean (true or false)", "null (no value)",
     "write true or false, or remove the key for the default"),
    ("bool-list", ROMEHyperParams, "rome.yaml", "mom2_adjustment: [true]", "mom2_adjustment",
     "a boolean (true or false)", "a list [true]", "write true or false, without quotes"),
    ("optional-bool-quoted", ROMEHyperParams, "rome.yaml", 'original_implementation: "yes"',
     "original_implementation", "a boolean (true or false)", "the string 'yes'",
     "write true without quotes"),
    ("int-fraction", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: 2.7", "v_num_grad_steps",
     "an integer", "the float 2.7", "write a whole number, such as 2 or 3"),
    ("int-whole-float", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: 3.0", "v_num_grad_steps",
     "an integer", "the float 3.0", "write 3"),
    ("int-exponent", ROMEHyperParams, "rome.yaml", "mom2_n_samples: 1e5", "mom2_n_samples",
     "an integer", "the float 100000.0", "write 100000"),
    ("int-bool", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: true", "v_num_grad_steps",
     "an integer", "the boolean true", "write a whole number: true and false are not numbers"),
    ("int-quoted", ROMEHyperParams, "rome.yaml", 'v_num_grad_steps: "20"', "v_num_grad_steps",
     "an integer", "the string '20'", "write 20 without quotes"),
    ("int-word", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: many", "v_num_grad_steps",
     "an integer", "the string 'many'", "write a whole number, without quotes"),
    ("int-one-item-list", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: [20]",
     "v_num_grad_steps",
     "an integer", "a list [20]", "write 20, not a list"),
    ("int-mapping", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: {n: 20}", "v_num_grad_steps",
     "an integer", "a mapping {'n': 20}", "write one whole number, such as 1"),
    ("int-null", ROMEHyperParams, "rome.yaml", "v_num_grad_steps: null", "v_num_grad_steps",
     "an integer", "null (no value)", "write a whole number, or remove the key for the default"),
    ("optional-int-quoted", ROMEHyperParams, "rome.yaml", 'v_loss_layer: "47"', "v_loss_layer",
     "an integer", "the string '47'", "write 47 without quotes"),
    ("float-bool", ROMEHyperParams, "rome.yaml", "v_lr: true", "v_lr",
     "a number", "the boolean true", "write a number: true and false are not numbers"),
    ("float-quoted", ROMEHyperParams, "rome.yaml", 'v_lr: "0.5"', "v_lr",
     "a number", "the string '0.5'", "write 0.5 without quotes"),
    ("float-quoted-exponent", ROMEHyperParams, "rome.yaml", 'v_lr: "5e-4"', "v_lr",
     "a number", "the string '5e-4'", "write 0.0005 without quotes"),
    ("float-word", ROMEHyperParams, "rome.yaml", "v_lr: fast", "v_lr",
     "a number", "the string 'fast'", "write a number, such as 0.5, without quotes"),
    ("float-one-item-list", ROMEHyperParams, "rome.yaml", "v_lr: [0.5]", "v_lr",
     "a number", "a list [0.5]", "write 0.5, not a list"),
    ("float-null", ROMEHyperParams, "rome.yaml", "v_lr: null", "v_lr",
     "a number", "null (no value)", "write a number, or remove the key for the default"),
    ("optional-float-bool", MEMITHyperParams, "memit.yaml", "mom2_update_weight: false",
     "mom2_update_weight", "a number", "the boolean false",
     "write a number: true and false are not numbers"),
    ("str-integer", ROMEHyperParams, "rome.yaml", "mom2_dataset: 2024", "mom2_dataset",
     "a string", "the integer 2024", "put it in quotes: '2024'"),
    ("str-yaml-boolean", SERACHyperParams, "serac.yaml", "encoder: no", "encoder",
     "a string", "the boolean false",
     "put the word in quotes (unquoted, YAML reads true/false/yes/no/on/off as a boolean), "
     "such as 'false'"),
    ("optional-str-float", SERACHyperParams, "serac.yaml", "checkpoint: 1.5", "checkpoint",
     "a string", "the float 1.5", "put it in quotes: '1.5'"),
    ("str-list", ROMEHyperParams, "rome.yaml", "mom2_dataset: [wikipedia]", "mom2_dataset",
     "a string", "a list ['wikipedia']", "write one string, not a list"),
    ("list-string-digits", ROMEHyperParams, "rome.yaml", 'layers: "45"', "layers",
     "a list of integers", "the string '45'", "write [45] without quotes (a YAML list)"),
    ("list-string-commas", MEMITHyperParams, "memit.yaml", 'layers: "4, 5"', "layers",
     "a list of integers", "the string '4, 5'", "write [4, 5] without quotes (a YAML list)"),
    ("list-string-brackets", FTHyperParams, "ft.yaml", "layers: '[0, 1]'", "layers",
     "a list of integers", "the string '[0, 1]'", "write [0, 1] without quotes (a YAML list)"),
    ("list-bare-integer", ROMEHyperParams, "rome.yaml", "layers: 17", "layers",
     "a list of integers", "the integer 17", "write [17] (a list, even of one item)"),
    ("list-mapping", ROMEHyperParams, "rome.yaml", "layers: {a: 1}", "layers",
     "a list of integers", "a mapping {'a': 1}",
     "write a YAML list, such as [1, 1], not a mapping"),
    ("list-null", LoRAHyperParams, "lora.yaml", "layers: null", "layers",
     "a list of integers", "null (no value)",
     "write [] for no items, or remove the key for the default"),
    ("list-item-quoted", MEMITHyperParams, "memit.yaml", 'layers: [4, "5"]', "layers[1]",
     "an integer", "the string '5'", "write 5 without quotes"),
    ("list-item-bool", MEMITHyperParams, "memit.yaml", "layers: [true]", "layers[0]",
     "an integer", "the boolean true", "write a whole number: true and false are not numbers"),
    ("list-item-fraction", MEMITHyperParams, "memit.yaml", "layers: [4, 5.5]", "layers[1]",
     "an integer", "the float 5.5", "write a whole number, such as 5 or 6"),
    ("str-list-string", MEMITHyperParams, "memit.yaml", "context_template_starts: The",
     "context_template_starts", "a list of strings", "the string 'The'",
     "write ['The'] without quotes (a YAML list)"),
    ("str-list-item-integer", MEMITHyperParams, "memit.yaml", "context_template_starts: [The, 5]",
     "context_template_starts[1]", "a string", "the integer 5", "put it in quotes: '5'"),
    ("optional-str-list-string", LoRAHyperParams, "lora.yaml", "target_modules: q_proj",
     "target_modules", "a list of strings", "the string 'q_proj'",
     "write ['q_proj'] without quotes (a YAML list)"),
    ("pairs-string", ROMEHyperParams, "rome.yaml", 'context_template_length_params: "5,10"',
     "context_template_length_params", "a list of lists of 2 integers", "the string '5,10'",
     "write a YAML list, such as [[1, 1], [1, 1]], without quotes"),
    ("pair-wrong-length", ROMEHyperParams, "rome.yaml",
     "context_template_length_params: [[5, 10, 3]]",
     "context_template_length_params[0]", "a list of 2 integers", "a list [5, 10, 3]",
     "write exactly 2 items, such as [1, 1]"),
    ("pair-item-fraction", ROMEHyperParams, "rome.yaml",
     "context_template_length_params: [[5, 2.5]]",
     "context_template_length_params[0][1]", "an integer", "the float 2.5",
     "write a whole number, such as 2 or 3"),
    ("optional-pair-string", IKEHyperParams, "ike.yaml", 'demonstrations_range: "0,10"',
     "demonstrations_range", "a list of 2 integers", "the string '0,10'",
     "write [0, 10] without quotes (a YAML list)"),
    ("literal-unknown", MEMITHyperParams, "memit.yaml", "z_mode: parallel", "z_mode",
     "one of 'batched', 'sequential'", "the string 'parallel'",
     "write one of 'batched', 'sequential'"),
    ("literal-case", ROMEHyperParams, "rome.yaml", "fact_token: Subject_Last", "fact_token",
     "one of 'subject_last', 'subject_first', 'subject_first_after_last', 'last'",
     "the string 'Subject_Last'", "write 'subject_last' (spelled exactly)"),
    ("literal-integer", ROMEHyperParams, "rome.yaml", "mom2_dtype: 32", "mom2_dtype",
     "one of 'float32', 'float64'", "the integer 32",
     "write one of them, as a string: 'float32', 'float64'"),
    ("literal-bool", IKEHyperParams, "ike.yaml", "scope: yes", "scope",
     "one of 'subject', 'all'", "the boolean true",
     "write one of them, as a string: 'subject', 'all'"),
    ("union-quoted-bool", LoRAHyperParams, "lora.yaml", 'norm_constraint: "false"',
     "norm_constraint",
     "a boolean (true or false) or a number", "the string 'false'", "write false without quotes"),
    ("union-list", LoRAHyperParams, "lora.yaml", "norm_constraint: [0]", "norm_constraint",
     "a boolean (true or false) or a number", "a list [0]",
     "write a boolean (true or false) or a number, such as true"),
    ("union-int-or-str-list", Outer, "outer.yaml", "size: [1]", "size",
     "an integer or a string", "a list [1]", "write an integer or a string, such as 1"),
    ("alias-key", LoRAHyperParams, "lora.yaml", 'r: "8"', "r",
     "an integer", "the string '8'", "write 8 without quotes"),
    ("nested-not-a-mapping", Outer, "outer.yaml", "inner: 5", "inner",
     "a mapping of Inner's fields", "the integer 5",
     "write its fields as 'key: value' lines indented under it (steps, scale)"),
    ("nested-field", Outer, "outer.yaml", 'inner: {steps: "3"}', "inner.steps",
     "an integer", "the string '3'", "write 3 without quotes"),
    ("float-list-string", Outer, "outer.yaml", 'weights: "0.5"', "weights",
     "a list of numbers", "the string '0.5'", "write [0.5] without quotes (a YAML list)"),
]


@pytest.mark.parametrize("cls, name, text, key, expected, found, fix",
                         [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_a_value_of_the_wrong_kind_is_refused_with_its_key_and_fix(
        tmp_path, cls, name, text, key, expected, found, fix):
    path = tmp_path / name
    path.write_text(text + "\n")
    with pytest.raises(HyperParamsError) as info:
        load_hparams(cls, path)
    message = str(info.value)
    assert message.startswith(f"1 problem in {name}:"), message
    assert f"'{key}' must be {expected}, got {found}: {fix} @ {name}.{key}" in message, message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "rome.yaml"
    path.write_text('mom2_adjustment: "false"\nlayers: "45"\nv_num_grad_steps: 2.7\n'
                    "v_lr: -1.0\nkl_factr: 0.1\ncontext_template_length_params: [[5, '10']]\n")
    with pytest.raises(HyperParamsError) as info:
        load_hparams(ROMEHyperParams, path)
    message = str(info.value)
    assert message.startswith("6 problems in rome.yaml:"), message
    for line in ("'mom2_adjustment' must be a boolean (true or false), got the string 'false': "
                 "write false without quotes @ rome.yaml.mom2_adjustment",
                 "'layers' must be a list of integers, got the string '45': write [45] without "
                 "quotes (a YAML list) @ rome.yaml.layers",
                 "'v_num_grad_steps' must be an integer, got the float 2.7: write a whole number, "
                 "such as 2 or 3 @ rome.yaml.v_num_grad_steps",
                 "'v_lr' must be > 0: -1.0 @ rome.yaml.v_lr",
                 "extra fields found (kl_factr) @ rome.yaml",
                 "'context_template_length_params[0][1]' must be an integer, got the string '10': "
                 "write 10 without quotes @ rome.yaml.context_template_length_params[0][1]"):
        assert line in message, message


# -- overrides, instances, mappings -----------------------------------------------------------
def test_overrides_are_checked_as_strictly():
    with pytest.raises(HyperParamsError,
                       match=r"'v_num_grad_steps' must be an integer, got the string '5': "
                             r"write 5 without quotes @ hparams\.v_num_grad_steps"):
        load_hparams(ROMEHyperParams, {}, v_num_grad_steps="5")


def test_overrides_of_an_instance_are_checked_as_strictly():
    hp = load_hparams(ROMEHyperParams, {"layers": [3]})
    with pytest.raises(HyperParamsError,
                       match=r"'layers' must be a list of integers, got the string '45': "
                             r"write \[45\] without quotes \(a YAML list\) @ hparams\.layers"):
        load_hparams(ROMEHyperParams, hp, layers="45")
    with pytest.raises(HyperParamsError, match=r"extra fields found \(nope\) @ hparams"):
        load_hparams(ROMEHyperParams, hp, nope=1)
    assert load_hparams(ROMEHyperParams, hp, layers=[4]) == attrs.evolve(hp, layers=(4,))


def test_a_key_that_is_not_a_string_is_refused():
    with pytest.raises(HyperParamsError) as info:
        load_hparams(ROMEHyperParams, {1: 2, "v_lr": "x"})
    message = str(info.value)
    assert message.startswith("2 problems in hparams:"), message
    assert ("the key 1 is not a name (the integer 1): keys are field names such as 'lr'; put it "
            "in quotes if it is one @ hparams") in message
    assert "'v_lr' must be a number, got the string 'x'" in message


def test_python_construction_refuses_what_tuple_would_split():
    with pytest.raises(TypeError, match=r"expected a list of integers, got the string '45': "
                                        r"write \[45\] \(a list\)"):
        ROMEHyperParams(layers="45")
    with pytest.raises(TypeError, match=r"got the boolean true in \[true\]"):
        ROMEHyperParams(layers=[True])
    with pytest.raises(TypeError, match=r"expected a list of strings, got the string 'The'"):
        MEMITHyperParams(context_template_starts="The")
    with pytest.raises(TypeError, match=r"expected a list of integers, got the string '10'"):
        ROMEHyperParams(context_template_length_params=[[5, 2], "10"])
    with pytest.raises(TypeError, match=r"got the float 2\.5 in \[5, 2\.5\]"):
        MEMITHyperParams(context_template_length_params=[[5, 2.5]])
    assert ROMEHyperParams(layers=[3]).layers == (3,)
    memit = MEMITHyperParams(context_template_starts=["The", "I"])
    assert memit.context_template_starts == ("The", "I")
    assert tuple_of(float)([1, 2.5]) == (1.0, 2.5)


# -- every kind of bad file -------------------------------------------------------------------
# (id, file name, content: bytes, or None for a folder; what the message must say)
FILES = [
    ("yaml-unclosed-bracket", "h.yaml", b"layers: [1, 2\nv_lr: 0.5\n",
     ["h.yaml: not valid YAML", "(line ", "fix the syntax there"]),
    ("yaml-bad-indentation", "h.yaml", b"layers:\n  - 1\n - 2\n",
     ["h.yaml: not valid YAML", "(line 3", "indent with spaces"]),
    ("yaml-tab-indentation", "h.yaml", b"inner:\n\tsteps: 1\n",
     ["h.yaml: not valid YAML", "indent with spaces, not tabs"]),
    ("yaml-unclosed-quote", "h.yaml", b'mom2_dataset: "wiki\nv_lr: 0.5\n',
     ["h.yaml: not valid YAML", "close every quote and bracket"]),
    ("yaml-python-object-apply", "h.yaml",
     b"layers: !!python/object/apply:os.system ['echo hacked']\n",
     ["h.yaml: not valid YAML",
      "the tag '!!python/object/apply:os.system' (line 1, column 9) is not allowed",
      "never as Python objects: remove the tag and write a plain value"]),
    ("yaml-python-object", "h.yaml", b"x: !!python/object:collections.OrderedDict {}\n",
     ["the tag '!!python/object:collections.OrderedDict'", "remove the tag"]),
    ("yaml-python-name", "h.yaml", b"x: !!python/name:os.system\n",
     ["the tag '!!python/name:os.system'", "remove the tag"]),
    ("yaml-custom-tag", "h.yaml", b"v_lr: !float 0.5\n", ["the tag '!float'", "remove the tag"]),
    ("yaml-duplicate-key", "h.yaml", b"v_lr: 0.1\nlayers: [1]\nv_lr: 0.5\n",
     ["h.yaml: not valid YAML", "found the key 'v_lr' twice (line 3, column 1): keep one of them"]),
    ("yaml-two-documents", "h.yaml", b"v_lr: 0.1\n---\nv_lr: 0.2\n",
     ["h.yaml: not valid YAML", "keep one document"]),
    ("yaml-control-character", "h.yaml", b"v_lr: 0.5\x00\n",
     ["h.yaml: not valid YAML: the character '\\x00' (offset 9) is not allowed in YAML: "
      "remove it"]),
    ("yaml-top-level-list", "h.yaml", b"- layers: [1]\n- v_lr: 0.5\n",
     ["h.yaml: expected a mapping of keys to values at the top level, got a list",
      "write one 'key: value' per line (such as 'lr: 0.1')"]),
    ("yaml-top-level-scalar", "h.yaml", b"just some text\n",
     ["h.yaml: expected a mapping", "got the string 'just some text'", "write one 'key: value'"]),
    ("yaml-no-space-after-colon", "h.yaml", b"v_lr:0.5\n",
     ["got the string 'v_lr:0.5'", "write one 'key: value' per line"]),
    ("yaml-top-level-number", "h.yaml", b"42\n", ["got the integer 42", "write one 'key: value'"]),
    ("yaml-empty", "h.yaml", b"", ["h.yaml: the hyper-parameter file is empty",
                                   "write one 'key: value' per line"]),
    ("yaml-blank-lines", "h.yaml", b"\n  \n\n", ["h.yaml: the hyper-parameter file is empty"]),
    ("yaml-only-comments", "h.yaml", b"# nothing here\n# at all\n",
     ["h.yaml: the hyper-parameter file is empty (only comments)", "write one 'key: value'"]),
    ("yaml-non-string-key", "h.yaml", b"1: 2\n",
     ["h.yaml: the key 1 is not a name (the integer 1)", "put it in quotes if it is one"]),
    ("yaml-boolean-key", "h.yaml", b"yes: 2\n", ["the key true is not a name (the boolean true)"]),
    ("json-trailing-comma", "h.json", b'{"v_lr": 0.1,}',
     ["h.json: not valid JSON", "(line 1, column", "no trailing commas"]),
    ("json-single-quotes", "h.json", b"{'v_lr': 0.1}",
     ["h.json: not valid JSON", "double quotes around keys and strings"]),
    ("json-yaml-in-a-json-file", "h.json", b"v_lr: 0.1\n", ["h.json: not valid JSON"]),
    ("json-top-level-list", "h.json", b"[1, 2]",
     ["h.json: expected a mapping of keys to values at the top level, got a list [1, 2]"]),
    ("json-duplicate-key", "h.json", b'{"v_lr": 0.1, "v_lr": 0.2}',
     ["h.json: not valid JSON", "found the key 'v_lr' twice: keep one of them"]),
    ("json-empty", "h.json", b"", ["h.json: the hyper-parameter file is empty"]),
    ("not-utf8", "h.yaml", b"mom2_dataset: caf\xe9\n",
     ["h.yaml: not UTF-8 text (byte 0xe9 at offset 17)", "save the hyper-parameter file as UTF-8"]),
    ("utf16", "h.yaml", "v_lr: 0.5\n".encode("utf-16"),
     ["h.yaml: not UTF-8 text (byte 0xff at offset 0)", "save the hyper-parameter file as UTF-8"]),
    ("a-folder", "h.yaml", None,
     ["h.yaml is a folder, not a hyper-parameter file: pass the path of a .yaml or .json file"]),
    ("missing", "h.yaml", "missing", ["hyper-parameter file not found:", "h.yaml: check the path"]),
]


def _make(tmp_path: Path, name: str, content: bytes | str | None) -> Path:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name, content, says", [f[1:] for f in FILES], ids=[f[0] for f in FILES])
def test_a_bad_file_is_refused_naming_the_file_and_the_fix(tmp_path, name, content, says):
    path = _make(tmp_path, name, content)
    with pytest.raises(HyperParamsError) as info:
        load_hparams(ROMEHyperParams, path)
    message = str(info.value)
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, HyperParamsError)
    for part in says:
        assert part in message, message
    with pytest.raises(HyperParamsError):  # the public reader says the same
        read_mapping(path)


def test_safe_loading_never_runs_code(tmp_path):
    marker = tmp_path / "hacked"
    path = tmp_path / "evil.yaml"
    path.write_text(f"layers: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(HyperParamsError, match="is not allowed"):
        load_hparams(ROMEHyperParams, path)
    assert not marker.exists()


def test_a_folder_names_the_files_in_it(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "rome.yaml").write_text("layers: [1]\n")
    with pytest.raises(HyperParamsError, match=r"is a folder.*\(it holds rome\.yaml\)"):
        load_hparams(ROMEHyperParams, tmp_path / "conf")


# -- pipeline files ---------------------------------------------------------------------------
@pytest.fixture
def plugins():
    p = Plugins(entry_points=False)
    p.register(editmethods_ft.plugin, name="ft")
    p.register(AddMethod(), name="add")
    return p


PIPELINES = [
    ("syntax", b"steps:\n  - method: ft\n    lr: [0.1\n", ["pipeline.yaml: not valid YAML"]),
    ("python-tag", b"steps: !!python/object/apply:os.system ['echo hacked']\n",
     ["pipeline.yaml: not valid YAML", "the tag '!!python/object/apply:os.system'",
      "remove the tag"]),
    ("top-level-list", b"- method: ft\n",
     ["pipeline.yaml: expected a mapping of keys to values at the top level, got a list",
      "such as 'steps: [{method: ft, lr: 0.01}]'"]),
    ("empty", b"",
     ["pipeline.yaml: the pipeline file is empty", "steps: [{method: ft, lr: 0.01}]"]),
    ("not-utf8", b"steps:\n  - method: ft\n    rewrite_module_tmp: \xff\n",
     ["pipeline.yaml: not UTF-8 text (byte 0xff", "save the pipeline file as UTF-8"]),
    ("a-folder", None, ["pipeline.yaml is a folder, not a pipeline file"]),
    ("non-string-key", b"steps: [{method: add}]\n3: x\n",
     ["pipeline.yaml: the key 3 is not a name"]),
    ("hparams-file-missing", b"steps:\n  - method: ft\n    hparams_file: nope.yaml\n",
     ["hyper-parameter file not found", "nope.yaml: check the path",
      "(the hparams_file of pipeline.yaml.steps[0])"]),
    ("hparams-file-not-a-string", b"steps:\n  - method: ft\n    hparams_file: 5\n",
     ["'hparams_file' must be a path (a string), got 5 @ pipeline.yaml.steps[0].hparams_file"]),
    ("method-not-a-string", b"steps:\n  - method: [ft]\n",
     ["'method' must be a method's name (a string), got ['ft'] @ pipeline.yaml.steps[0].method"]),
    ("step-value-quoted", b"steps:\n  - method: ft\n    lr: '0.01'\n",
     ["'lr' must be a number, got the string '0.01': write 0.01 without quotes "
      "@ pipeline.yaml.steps[0].lr"]),
    ("step-layers-string", b"steps:\n  - method: add\n    layers: '0'\n",
     ["'layers' must be a list of integers, got the string '0': write [0] without quotes "
      "(a YAML list) @ pipeline.yaml.steps[0].layers"]),
]


@pytest.mark.parametrize("content, says", [p[1:] for p in PIPELINES], ids=[p[0] for p in PIPELINES])
def test_a_bad_pipeline_file_is_refused_naming_the_file_and_the_fix(tmp_path, plugins, content,
                                                                    says):
    path = _make(tmp_path, "pipeline.yaml", content)
    with pytest.raises(HyperParamsError) as info:
        Pipeline.from_yaml(path, plugins=plugins)
    for part in says:
        assert part in str(info.value), str(info.value)


def test_a_bad_hparams_file_named_by_a_pipeline_step(tmp_path, plugins):
    (tmp_path / "ft.yaml").write_text("layers: [1\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text("steps:\n  - method: ft\n    hparams_file: ft.yaml\n")
    with pytest.raises(HyperParamsError, match=r"ft\.yaml: not valid YAML.*\(the hparams_file of "
                                               r"pipeline\.yaml\.steps\[0\]\)"):
        Pipeline.from_yaml(path, plugins=plugins)


# -- what still loads -------------------------------------------------------------------------
def _shipped_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / f for f in out.stdout.split() if "/hparams/" in f
            and f.endswith((".yaml", ".yml", ".json"))]


SHIPPED = _shipped_files()


def test_the_shipped_files_are_found():
    assert len(SHIPPED) >= 30
    packages = {p.parent.parent.name for p in SHIPPED}
    assert packages == set(PACKAGES), f"add a class for {packages - set(PACKAGES)} to PACKAGES"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_loads_through_its_class(path):
    cls, method = PACKAGES[path.parent.parent.name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a shipped file has no runtime keys to drop either
        hp = load_hparams(cls, path, method=method)
    assert isinstance(hp, cls)
    assert load_hparams(cls, hp.to_dict(), method=method) == hp  # and round-trips


EASYEDIT_ROME = """\
alg_name: "ROME"
model_name: "./hugging_cache/gpt2-xl"
stats_dir: "./data/stats"
device: 0
fp16: "no"
tokenizer_name: 5
layers: [17]
v_lr: 5e-1
clamp_norm_factor: 4
mom2_adjustment: true
context_template_length_params: [[5, 10], [10, 10]]
rewrite_module_tmp: "transformer.h.{}.mlp.c_proj"
layer_module_tmp: "transformer.h.{}"
mom2_n_samples: 100000
mom2_dtype: "float32"
"""


def test_easyedit_files_still_load(tmp_path):
    path = tmp_path / "gpt2-xl.yaml"
    path.write_text(EASYEDIT_ROME)
    with pytest.warns(UserWarning) as caught:
        hp = load_hparams(ROMEHyperParams, path, method="rome")
    dropped = " ".join(str(w.message) for w in caught)
    for key in ("model_name", "stats_dir", "device", "fp16", "tokenizer_name"):
        assert f"'{key}' sets the run" in dropped  # dropped whatever their type
    assert hp.layers == (17,) and hp.v_lr == 0.5 and type(hp.v_lr) is float
    assert hp.clamp_norm_factor == 4.0 and type(hp.clamp_norm_factor) is float
    assert hp.context_template_length_params == ((5, 10), (10, 10))
    # aliases: other tools' names for our keys
    assert load_hparams(LoRAHyperParams, {"r": 4, "alpha": 16, "norm_constraint": False}).rank == 4
    assert load_hparams(IKEHyperParams, {"k_demos": 3}).k == 3
    ft = load_hparams(FTHyperParams, {"objective_optimization": "prompt_last"})
    assert ft.objective == "prompt_last"


@pytest.mark.parametrize("text, value", [
    ("5e-4", 5e-4), ("1E-3", 1e-3), ("+1e3", 1000.0), ("2.5e-2", 0.025), ("1.0e+2", 100.0),
    ("3", 3.0), (".5", 0.5),
])
def test_numbers_yaml_1_1_reads_as_strings_are_numbers(tmp_path, text, value):
    path = tmp_path / "ft.yaml"
    path.write_text(f"lr: {text}\n")
    hp = load_hparams(FTHyperParams, path)
    assert hp.lr == value and type(hp.lr) is float


def test_the_good_kinds_load():
    hp = load_hparams(Outer, {"inner": {"steps": 3, "scale": 2}, "weights": [1, 0.5],
                              "size": "big"})
    assert hp == Outer(inner=Inner(steps=3, scale=2.0), weights=[1.0, 0.5], size="big")
    assert load_hparams(Outer, {"size": 7}).size == 7
    assert load_hparams(ROMEHyperParams, {"layers": None, "v_loss_layer": None}).layers is None
    ike = load_hparams(IKEHyperParams, {"demonstrations_range": (0, 10)})
    assert ike.demonstrations_range == (0, 10)
    assert load_hparams(LoRAHyperParams, {"norm_constraint": 0}).norm_constraint == 0.0
    assert load_hparams(ROMEHyperParams, {"mom2_adjustment": False}).mom2_adjustment is False


# -- every field of every plugin's class is strict --------------------------------------------
def _wrong_kind(tp) -> object:
    """A value of another kind than ``tp`` that the old converter coerced."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _wrong_kind(members[0]) if len(members) == 1 else "x"
    if origin is typing.Literal:
        return 12345
    if tp is bool:
        return "false"
    if tp is int:
        return 2.5
    if tp is float:
        return "0.5"
    if tp is str:
        return 5
    if origin in (tuple, list) or tp in (tuple, list):
        return "12"
    raise AssertionError(f"no wrong value for {tp!r}: extend _wrong_kind")


FIELDS = [(cls, f) for cls, _ in PACKAGES.values() for f in attrs.fields(attrs.resolve_types(cls))]


@pytest.mark.parametrize("cls, field", FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in FIELDS])
def test_every_plugin_field_refuses_another_kind(cls, field):
    bad = _wrong_kind(field.type)
    with pytest.raises(HyperParamsError) as info:
        load_hparams(cls, {field.name: bad})
    assert f"'{field.name}' must be " in str(info.value), str(info.value)
    assert f"@ hparams.{field.name}" in str(info.value)


# -- a refused hparams never reaches the model ------------------------------------------------
REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")


@pytest.mark.parametrize("hparams", [
    {"value": "0.5"}, {"value": True}, {"layers": "0"}, {"layers": [True]}, {"layers": 0},
    {"layers": [0.0]},
], ids=str)
def test_refused_hparams_leave_the_weights_bit_identical(hparams):
    method = AddMethod()
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(method))
    state = state_copy(editor.model)
    with pytest.raises(HyperParamsError, match="must be"):
        editor.edit(REQ, "add", hparams)
    assert method.calls == []  # the method was never asked for an update
    assert_same_state(editor.model, state)
    assert editor.edits == []


@pytest.mark.parametrize("plugin, method, text", [
    (editmethods_ft.plugin, "ft", "layers: [0]\nnum_steps: 2.7\n"),
    (editmethods_ft.plugin, "ft", 'layers: "0"\nnum_steps: 2\n'),
    (editmethods_ft.plugin, "ft", "layers: [0]\nlr: '1e-3'\n"),
    (editmethods_rome.plugin, "rome", 'layers: [0]\nmom2_adjustment: "false"\n'),
], ids=["ft-num_steps-2.7", "ft-layers-string", "ft-lr-quoted", "rome-mom2_adjustment-false"])
def test_a_real_method_never_sees_refused_hparams(tmp_path, plugin, method, text):
    p = Plugins(entry_points=False)
    p.register(plugin, name=method)
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=p)
    state = state_copy(editor.model)
    path = tmp_path / f"{method}.yaml"
    path.write_text(text)
    with pytest.raises(HyperParamsError, match=rf"must be .* @ {method}\.yaml\."):
        editor.edit(REQ, method, path)
    assert_same_state(editor.model, state)
    assert editor.edits == []
