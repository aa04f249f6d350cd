"""Pipelines across packages: a YAML file mixing methods, run in order, rolled back in reverse."""

from __future__ import annotations

import pytest

import editmethods_ft.plugin
from editmethods import Editor, EditRequest, HyperParamsError, Pipeline
from editmethods.plugins import Plugins
from editmethods.testing import AddMethod, assert_same_state, state_copy, tiny_model, tiny_tokenizer
from editmethods_ft import FTHyperParams


@pytest.fixture
def plugins():
    p = Plugins(entry_points=False)
    p.register(editmethods_ft.plugin, name="ft")
    p.register(AddMethod(), name="add")
    return p


REQUESTS = [
    EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
    EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano"),
]


def test_mixed_method_yaml_runs_in_order_and_rolls_back_in_reverse(tmp_path, plugins):
    (tmp_path / "ft.yaml").write_text("layers: [1]\nnum_steps: 5\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "steps:\n"
        "  - method: ft\n    hparams_file: ft.yaml\n    lr: 0.01\n"
        "  - method: add\n    layers: [0]\n    value: 0.001\n"
    )
    pipeline = Pipeline.from_yaml(path, plugins=plugins)
    assert isinstance(pipeline.steps[0].hparams, FTHyperParams)
    assert pipeline.steps[0].hparams.lr == 0.01 and pipeline.steps[0].hparams.num_steps == 5
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)
    state = state_copy(editor.model)
    handles = pipeline.run(editor, REQUESTS)
    assert [h.method for h in handles] == ["ft", "add"]
    pipeline.rollback(editor)
    assert_same_state(editor.model, state)
    assert editor.edits == []


def test_step_errors_name_the_step_and_field(tmp_path, plugins):
    path = tmp_path / "bad.yaml"
    path.write_text("steps:\n  - method: ft\n    lr: -2\n    lerning_rate: 1\n")
    with pytest.raises(HyperParamsError) as info:
        Pipeline.from_yaml(path, plugins=plugins)
    assert "bad.yaml.steps[0]" in str(info.value)
    assert "lerning_rate" in str(info.value) and "'lr' must be > 0" in str(info.value)


def test_a_failing_step_rolls_back_the_steps_before_it(plugins):
    pipeline = Pipeline.from_dict({"steps": [{"method": "add", "value": 0.1},
                                             {"method": "add", "layers": [5]}]}, plugins=plugins)
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)
    state = state_copy(editor.model)
    with pytest.raises(Exception, match="outside the model"):
        pipeline.run(editor, REQUESTS)
    assert_same_state(editor.model, state)
    assert editor.edits == []
