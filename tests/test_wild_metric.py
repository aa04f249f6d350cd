"""The WILD protocol on the GPT-2 reference model: after an edit that takes, the model *says*
the new object when it continues the prompt on its own; before it, it does not."""

from __future__ import annotations

import pytest

from editmethods import Editor
from editmethods.plugins import ENV_VAR, reset_plugins

pytestmark = pytest.mark.slow

WILD = ["gen_efficacy", "gen_paraphrase", "gen_locality"]


@pytest.fixture(scope="module")
def editor():
    testing = pytest.importorskip("editmethods_testbed.testing",
                                  reason="editmethods-testbed is not installed")
    testing.require_reference("gpt2")
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_VAR, "ft,testbed")
    reset_plugins()
    try:
        yield Editor.from_pretrained("testbed-gpt2")
    finally:
        mp.undo()
        reset_plugins()


@pytest.fixture(scope="module")
def request_0(editor):
    import editmethods_testbed
    from editmethods.evaluation.loaders import load_requests

    (req,) = load_requests(editmethods_testbed.data_path("test"), limit=1)
    return req


def test_an_edit_that_takes_is_said_and_the_unedited_model_does_not_say_it(editor, request_0):
    from editmethods.evaluation.benchmarking import reference_hparams

    req = request_0  # "Wendel Grimoth was born in" Mulenvos -> Warsaw
    before = editor.evaluate([req], metrics=WILD)
    assert before["gen_efficacy"].value == 0.0 and before["gen_efficacy"].protocol == "wild"
    assert "gen_locality" not in before  # no unedited answers recorded yet
    editor.remember_unedited([req], generation=True)
    hparams = reference_hparams(editor.plugins, "ft", "testbed-gpt2")
    handle = editor.edit(req, "ft", hparams)
    try:
        after = editor.evaluate([req], metrics=WILD)
    finally:
        editor.rollback(handle)
    assert after["gen_efficacy"].value == 1.0
    assert after["gen_paraphrase"].value == 1.0 and after["gen_paraphrase"].details["prompts"] == 2
    # the neighbour (another person born in Mulenvos) still says what it said unedited
    assert after["gen_locality"].value == 1.0 and after["gen_locality"].details["prompts"] == 1
    sample = after["gen_efficacy"].details["samples"][0]
    assert sample["generated"].lstrip().startswith("Warsaw") and sample["expected"] == "Warsaw"


def test_a_target_the_model_does_not_say_is_a_miss_even_when_its_first_token_is(editor, request_0):
    import attrs

    # unedited, the model says " Mulenvos": the true object is a hit, a longer answer that
    # starts with it is not, and a different object is not
    def report(**kw):
        # ground_truth cleared: a request whose target is the truth is refused as an edit
        return editor.evaluate([attrs.evolve(request_0, ground_truth=None, **kw)],
                               metrics=["gen_efficacy"])

    assert report(target_new="Mulenvos")["gen_efficacy"].value == 1.0
    assert report(target_new="mulenvos")["gen_efficacy"].value == 1.0  # case ignored
    assert report(target_new="Mulenvos Heights")["gen_efficacy"].value == 0.0
    assert report(target_new="Warsaw")["gen_efficacy"].value == 0.0
