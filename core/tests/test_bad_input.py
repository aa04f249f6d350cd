"""Every bad input is refused cleanly (issue #13, item 6).

Each case is one kind of bad input. It must raise an ``EditmethodsError`` subclass whose
message names the field (or argument, or option) and says what to give instead; at the
command line it must print one line on stderr and exit with 1 (or be a usage error, exit
code 2), never a traceback; and it must leave the model exactly as it was (weights compared
bit for bit, or the model folder's bytes for the CLI).

Cases that go through ``Editor.edit`` / ``Editor.evaluate`` / ``Editor.answer`` need the
editor to call :mod:`editmethods.request_checks` (``as_requests``, ``check_fits``,
``check_prompt``, ``check_metrics``); until it does they are expected failures, marked
``WIRED-BY-LEAD`` below, and they pass (the mark switches off) once it does. The functions
themselves are tested directly here too.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from editmethods import Editor, EditRequest, PromptAnswer
from editmethods.errors import (
    ArchitectureError,
    ArgumentError,
    EditmethodsError,
    MethodError,
    MissingDependencyError,
    ModelLoadError,
    RequestError,
)
from editmethods.evaluation.loaders import DatasetError, load_requests
from editmethods.plugins import ENV_VAR, reset_plugins
from editmethods.request_checks import (
    as_requests,
    check_fits,
    check_metrics,
    check_prompt,
    context_length,
)
from editmethods.testing import (
    AddMethod,
    assert_same_state,
    make_plugins,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)

GOOD = dict(prompt="The capital of France is", subject="France", target_new="Rome")
LONG = "The capital of France is " + "very " * 80 + "much"  # > 64 tokens of the tiny models

# ---------------------------------------------------------------------------------------------
# EditRequest and PromptAnswer: the request types check their own fields.
# (id, fields changed from GOOD, what the message must name, the fix it must give)
REQUEST_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("prompt-int", dict(prompt=5), "prompt must be a str, got int", "give the text"),
    ("prompt-none", dict(prompt=None), "prompt must be a str, got NoneType", "give the text"),
    ("prompt-list", dict(prompt=["The capital of France is"]), "prompt must be a str, got list",
     "give the text"),
    ("prompt-empty", dict(prompt=""), "prompt is empty", "give the text"),
    ("prompt-whitespace", dict(prompt="   "), "prompt is empty (only whitespace)", "give the text"),
    ("prompt-zero-width", dict(prompt="\u200b\u200b"), "prompt '\\u200b\\u200b' has no visible",
     "give the text"),
    ("prompt-trailing-space", dict(prompt="The capital of France is "), "prompt ends with whitespace",
     "remove the trailing space"),
    ("subject-int", dict(subject=3), "subject must be a str, got int", "give the entity"),
    ("subject-none", dict(subject=None), "subject must be a str, got NoneType", "give the entity"),
    ("subject-empty", dict(subject=""), "subject is empty", "give the entity"),
    ("subject-whitespace", dict(subject="  "), "subject is empty", "give the entity"),
    ("subject-invisible", dict(subject="\u2060"), "subject '\\u2060' has no visible",
     "give the entity"),
    ("subject-not-in-prompt", dict(subject="Spain"), "subject 'Spain' does not occur in prompt",
     "must appear verbatim"),
    ("target-int", dict(target_new=7), "target_new must be a str, got int", "give the new answer"),
    ("target-none", dict(target_new=None), "target_new must be a str, got NoneType",
     "give the new answer"),
    ("target-dict", dict(target_new={"str": "Rome"}), "target_new must be a str, got dict",
     "give the new answer"),
    ("target-list", dict(target_new=["Rome"]), "target_new must be a str, got list",
     "give the new answer"),
    ("target-bytes", dict(target_new=b"Rome"), "target_new must be a str, got bytes",
     "give the new answer"),
    ("target-empty", dict(target_new=""), "target_new is empty", "give the new answer"),
    ("target-spaces", dict(target_new="   "), "target_new is empty (only whitespace)",
     "give the new answer"),
    ("target-tab-newline", dict(target_new="\t\n"), "target_new is empty", "give the new answer"),
    ("target-zero-width-space", dict(target_new="\u200b"), "target_new '\\u200b' has no visible",
     "give the new answer"),
    ("target-word-joiner", dict(target_new="\u2060"), "target_new '\\u2060' has no visible",
     "give the new answer"),
    ("target-bom", dict(target_new="\ufeff"), "target_new '\\ufeff' has no visible",
     "give the new answer"),
    ("target-control", dict(target_new="\x00\x07"), "target_new '\\x00\\x07' has no visible",
     "give the new answer"),
    ("target-zero-width-mix", dict(target_new=" \u200b\u200d\u00ad "), "target_new",
     "give the new answer"),
    ("target-hangul-filler", dict(target_new="\u3164"), "target_new '\\u3164' has no visible",
     "give the new answer"),
    ("target-lone-combining-mark", dict(target_new="\u0301"), "has no visible",
     "give the new answer"),
    ("target-equals-ground-truth", dict(target_new="Paris", ground_truth="Paris"),
     "target_new 'Paris' is the same as ground_truth", "give a new target_new"),
    ("target-equals-ground-truth-stripped", dict(target_new=" Paris", ground_truth="Paris  "),
     "target_new 'Paris' is the same as ground_truth", "give a new target_new"),
    ("ground-truth-int", dict(ground_truth=5), "ground_truth must be a str, got int",
     "give the true answer, or None"),
    ("ground-truth-list", dict(ground_truth=["Paris"]), "ground_truth must be a str, got list",
     "give the true answer, or None"),
    ("ground-truth-empty", dict(ground_truth=""), "ground_truth is empty",
     "give the true answer, or None"),
    ("ground-truth-invisible", dict(ground_truth="\ufeff"), "ground_truth '\\ufeff' has no visible",
     "give the true answer, or None"),
    ("rephrase-not-a-list", dict(rephrase_prompts=5), "rephrase_prompts must be a list of str",
     "got int"),
    ("rephrase-dict", dict(rephrase_prompts={"p": "France's capital is"}),
     "rephrase_prompts must be a list of str", "got dict"),
    ("rephrase-item-int", dict(rephrase_prompts=["France's capital is", 5]),
     "rephrase_prompts[1] must be a str, got int", "give paraphrases"),
    ("rephrase-item-none", dict(rephrase_prompts=[None]), "rephrase_prompts[0] must be a str, got NoneType",
     "give paraphrases"),
    ("rephrase-item-empty", dict(rephrase_prompts=[""]), "rephrase_prompts[0] is empty",
     "give paraphrases"),
    ("rephrase-item-trailing-space", dict(rephrase_prompts=["France's capital is "]),
     "rephrase_prompts[0] ends with whitespace", "remove the trailing space"),
    ("generation-item-int", dict(generation_prompts=[1.5]), "generation_prompts[0] must be a str, got float",
     "give prompts to generate text from"),
    ("locality-str", dict(locality="The capital of Spain is"),
     "locality must be a list of (prompt, answer) pairs", "got str"),
    ("locality-one-dict", dict(locality={"prompt": "The capital of Spain is", "answer": "Madrid"}),
     "locality must be a list of (prompt, answer) pairs", "e.g. locality=["),
    ("locality-not-iterable", dict(locality=3), "locality must be a list", "got int"),
    ("locality-item-int", dict(locality=[5]), "locality[0] must be a (prompt, answer) pair",
     "got int"),
    ("locality-item-str", dict(locality=["The capital of Spain is"]),
     "locality[0] must be a (prompt, answer) pair", "got str"),
    ("locality-item-triple", dict(locality=[("a", "b", "c")]),
     "locality[0] must be a (prompt, answer) pair, got 3 items", "give (prompt, answer)"),
    ("locality-dict-missing-answer", dict(locality=[{"prompt": "The capital of Spain is"}]),
     "locality[0] must have the keys 'prompt' and 'answer'", "give {'prompt'"),
    ("locality-dict-extra-key", dict(locality=[{"prompt": "a", "answer": "b", "answr": "c"}]),
     "locality[0] must have the keys 'prompt' and 'answer'", "got keys 'answer', 'answr', 'prompt'"),
    ("locality-prompt-int", dict(locality=[(5, "Madrid")]), "locality[0].prompt must be a str, got int",
     "give the text the answer should follow"),
    ("locality-answer-int", dict(locality=[("The capital of Spain is", 5)]),
     "locality[0].answer must be a str, got int", "give the expected answer"),
    ("locality-answer-none", dict(locality=[("The capital of Spain is", None)]),
     "locality[0].answer must be a str, got NoneType", "give the expected answer"),
    ("locality-answer-empty", dict(locality=[("The capital of Spain is", " ")]),
     "locality[0].answer is empty", "give the expected answer"),
    ("locality-answer-invisible", dict(locality=[("The capital of Spain is", "\u200b")]),
     "locality[0].answer '\\u200b' has no visible", "give the expected answer"),
    ("locality-prompt-trailing-space", dict(locality=[("The capital of Spain is ", "Madrid")]),
     "locality[0].prompt ends with whitespace", "remove the trailing space"),
    ("locality-kind-int", dict(locality=[{"prompt": "a", "answer": "b", "kind": 3}]),
     "locality[0].kind must be a str, got int", "give a label"),
    ("portability-answer-list", dict(portability=[("The Colosseum is in", ["Rome"])]),
     "portability[0].answer must be a str, got list", "give the expected answer"),
    ("case-id-list", dict(case_id=[1]), "case_id must be a str, an int or None", "got list"),
    ("case-id-float", dict(case_id=1.5), "case_id must be a str, an int or None", "got float"),
]


@pytest.mark.parametrize("changes,field,fix", [c[1:] for c in REQUEST_CASES],
                         ids=[c[0] for c in REQUEST_CASES])
def test_edit_request_refuses(changes, field, fix):
    with pytest.raises(RequestError) as info:
        EditRequest(**{**GOOD, **changes})
    message = str(info.value)
    assert field in message and fix in message, message


PAIR_CASES = [
    ("pair-prompt-int", dict(prompt=1, answer="Madrid"), "PromptAnswer.prompt must be a str, got int"),
    ("pair-answer-dict", dict(prompt="The capital of Spain is", answer={"str": "Madrid"}),
     "PromptAnswer.answer must be a str, got dict"),
    ("pair-answer-whitespace", dict(prompt="The capital of Spain is", answer="\t"),
     "PromptAnswer.answer is empty"),
    ("pair-kind-none", dict(prompt="The capital of Spain is", answer="Madrid", kind=None),
     "PromptAnswer.kind must be a str, got NoneType"),
]


@pytest.mark.parametrize("fields,field", [c[1:] for c in PAIR_CASES], ids=[c[0] for c in PAIR_CASES])
def test_prompt_answer_refuses(fields, field):
    with pytest.raises(RequestError) as info:
        PromptAnswer(**fields)
    assert field in str(info.value) and ": give" in str(info.value), str(info.value)


def test_every_problem_of_a_request_is_listed_at_once():
    with pytest.raises(RequestError) as info:
        EditRequest(prompt="The capital of France is", subject=3, target_new="\u200b",
                    rephrase_prompts=[5], case_id=12)
    message = str(info.value)
    assert message.startswith("edit request 12: ")
    for part in ("subject must be a str, got int", "target_new '\\u200b' has no visible",
                 "rephrase_prompts[0] must be a str, got int"):
        assert part in message


def test_good_requests_still_convert_their_pairs():
    r = EditRequest(**GOOD, ground_truth="Paris", rephrase_prompts="France's capital is",
                    locality=[("The capital of Spain is", "Madrid"),
                              {"prompt": "Miles Davis plays the", "answer": "trumpet", "kind": "nq"}])
    assert r.rephrase_prompts == ("France's capital is",)
    assert [p.kind for p in r.locality] == ["", "nq"]
    assert _request(target_new="Rome\u200b").target_new == "Rome\u200b"  # visible text


# ---------------------------------------------------------------------------------------------
# request_checks with a model: the model is never touched.
@pytest.fixture
def editor() -> Editor:
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))


def _request(**changes: Any) -> EditRequest:
    return EditRequest(**{**GOOD, **changes})


AS_REQUESTS_CASES: list[tuple[str, Callable[[], Any], str, str]] = [
    ("str", lambda: "The capital of France is Rome", "got a str",
     "EditRequest(prompt=..., subject=..., target_new=...)"),
    ("list-of-str", lambda: ["a string"], "item 0 is str ('a string'), not an EditRequest",
     "EditRequest(prompt=..., subject=..., target_new=...)"),
    ("dict", lambda: dict(GOOD), "got a dict", "EditRequest(**fields)"),
    ("list-of-dict", lambda: [dict(GOOD)], "item 0 is dict", "EditRequest(prompt=..."),
    ("none", lambda: None, "got NoneType (None)", "pass EditRequest objects"),
    ("int", lambda: 3, "got int (3)", "pass EditRequest objects"),
    ("bytes", lambda: b"The capital", "got a bytes", "pass EditRequest objects"),
    ("empty-list", lambda: [], "no edit requests given", "pass at least one EditRequest"),
    ("mixed-list", lambda: [_request(), "x"], "item 1 is str", "pass EditRequest objects"),
    ("prompt-answer", lambda: PromptAnswer("The capital of Spain is", "Madrid"),
     "got a PromptAnswer", "pass EditRequest objects"),
    ("nested-list", lambda: [[_request()]], "item 0 is list", "pass EditRequest objects"),
]


@pytest.mark.parametrize("make,field,fix", [c[1:] for c in AS_REQUESTS_CASES],
                         ids=[c[0] for c in AS_REQUESTS_CASES])
def test_as_requests_refuses(editor, make, field, fix):
    state = state_copy(editor.model)
    with pytest.raises(RequestError) as info:
        as_requests(make(), argument="evaluate(requests=...)")
    message = str(info.value)
    assert message.startswith("evaluate(requests=...): ") and field in message and fix in message
    assert_same_state(editor.model, state)


def test_as_requests_message_for_a_string_is_exact():
    with pytest.raises(RequestError) as info:
        as_requests("a string", argument="evaluate(requests=...)")
    assert str(info.value) == ("evaluate(requests=...): got a str; pass EditRequest objects, "
                               "e.g. EditRequest(prompt=..., subject=..., target_new=...)")


def test_as_requests_accepts_one_request_or_any_sequence():
    r = _request()
    assert as_requests(r, argument="x") == [r]
    assert as_requests((r, r), argument="x") == [r, r]
    assert as_requests(iter([r]), argument="x") == [r]


FITS_CASES: list[tuple[str, str, Callable[[], EditRequest], str, str]] = [
    ("prompt-too-long", "gpt2", lambda: _request(prompt=LONG),
     "prompt + target_new is", "shorten the prompt to at most"),
    ("prompt-too-long-subject-cut", "gpt2", lambda: _request(prompt=LONG),
     "the subject 'France'", "config.n_positions"),
    ("rephrase-too-long", "gpt2", lambda: _request(rephrase_prompts=[LONG]),
     "rephrase_prompts[0] + target_new is", "shorten the prompt"),
    ("locality-too-long", "gpt2", lambda: _request(locality=[(LONG, "Paris")]),
     "locality[0] prompt + answer is", "shorten the prompt"),
    ("portability-too-long", "gpt2", lambda: _request(portability=[(LONG, "Paris")]),
     "portability[0] prompt + answer is", "shorten the prompt"),
    ("generation-prompt-too-long", "gpt2", lambda: _request(generation_prompts=[LONG]),
     "generation_prompts[0] is", "shorten it to fewer than 64 tokens"),
    ("long-target", "gpt2", lambda: _request(target_new="Rome " * 70 + "Rome"),
     "prompt + target_new is", "shorten the prompt to at most 0 tokens"),
    ("llama-max-position-embeddings", "llama", lambda: _request(prompt=LONG),
     "prompt + target_new is", "config.max_position_embeddings"),
]


@pytest.mark.parametrize("model_type,make,field,fix", [c[1:] for c in FITS_CASES],
                         ids=[c[0] for c in FITS_CASES])
def test_check_fits_refuses(model_type, make, field, fix):
    model, tok = tiny_model(model_type), tiny_tokenizer()
    state = state_copy(model)
    with pytest.raises(RequestError) as info:
        check_fits(make(), model, tok)
    message = str(info.value)
    assert field in message and fix in message and "edit request 0" in message, message
    assert_same_state(model, state)


def test_check_fits_passes_what_fits_and_models_without_a_context_length():
    tok = tiny_tokenizer()
    check_fits([_request(), _request(rephrase_prompts=["France's capital is"])], tiny_model("gpt2"), tok)
    t5 = tiny_model("t5")
    assert context_length(t5) is None
    check_fits(_request(prompt=LONG), t5, tok)  # relative positions: no limit to check
    assert context_length(tiny_model("gpt2")) == (64, "n_positions")


def test_check_fits_n_ctx_config():
    class Config:
        n_ctx = 8

    class Model:
        config = Config()

    with pytest.raises(RequestError, match=r"more than the model's context of 8 tokens \(config\.n_ctx\)"):
        check_fits(_request(), Model(), tiny_tokenizer())


PROMPT_CASES = [
    ("answer-int", 5, "answer(prompt=...) must be a str, got int"),
    ("answer-none", None, "answer(prompt=...) must be a str, got NoneType"),
    ("answer-list", ["The capital of France is"], "answer(prompt=...) must be a str, got list"),
    ("answer-empty", "", "answer(prompt=...) is empty"),
    ("answer-invisible", "\u200b", "has no visible characters"),
]


@pytest.mark.parametrize("prompt,field", [c[1:] for c in PROMPT_CASES], ids=[c[0] for c in PROMPT_CASES])
def test_check_prompt_refuses(editor, prompt, field):
    state = state_copy(editor.model)
    with pytest.raises(RequestError) as info:
        check_prompt(prompt, argument="answer(prompt=...)")
    assert field in str(info.value) and "pass the prompt as text" in str(info.value)
    assert_same_state(editor.model, state)


METRIC_CASES = [
    ("metrics-unknown", ["reliabilty"], "unknown metric 'reliabilty'", "known metrics: reliability"),
    ("metrics-two-unknown", ["bogus", "reliability", "nope"], "unknown metrics 'bogus', 'nope'",
     "known metrics:"),
    ("metrics-str", "reliability", "got a str 'reliability'", "pass a list of metric names"),
    ("metrics-int", 3, "got int (3)", "pass a list of metric names"),
    ("metrics-item-int", ["reliability", 3], "metric names must be str, got int", "got int (3)"),
    ("metrics-dict", {"reliability": True}, "got dict", "pass a list of metric names"),
]


@pytest.mark.parametrize("metrics,field,fix", [c[1:] for c in METRIC_CASES], ids=[c[0] for c in METRIC_CASES])
def test_check_metrics_refuses(editor, metrics, field, fix):
    with pytest.raises(ArgumentError) as info:
        check_metrics(metrics, editor.plugins, argument="evaluate(metrics=...)")
    message = str(info.value)
    assert message.startswith("evaluate(metrics=...): ") and field in message and fix in message


def test_check_metrics_accepts_known_names_and_patterns(editor):
    names = ["reliability", "locality_neighborhood", "efficacy", "ngram_entropy", "gen_locality"]
    assert check_metrics(names, editor.plugins) == names
    assert check_metrics(None, editor.plugins) is None


# WIRED-BY-LEAD: these go through Editor.edit / evaluate / answer, which must call
# editmethods.request_checks (as_requests, check_fits, check_prompt, check_metrics). Until the
# editor does, they are expected to fail; once it does, the marks switch off and they must pass.
def _calls(method: Callable[..., Any], name: str) -> bool:
    return name in inspect.getsource(method)


def _wired(method: Callable[..., Any], name: str) -> Any:
    return pytest.mark.xfail(not _calls(method, name), strict=False,
                             reason=f"WIRED-BY-LEAD: Editor.{method.__name__} does not call "
                                    f"request_checks.{name} yet")


EDITOR_CASES: list[tuple[str, Callable[[Editor], Any], type, str, str, Any]] = [
    ("evaluate-str-in-list", lambda e: e.evaluate(["a string"]), RequestError,
     "evaluate(requests=...)", "EditRequest(prompt=", _wired(Editor.evaluate, "as_requests")),
    ("evaluate-str", lambda e: e.evaluate("a string"), RequestError,
     "evaluate(requests=...)", "EditRequest(prompt=", _wired(Editor.evaluate, "as_requests")),
    ("evaluate-dict", lambda e: e.evaluate([dict(GOOD)]), RequestError,
     "evaluate(requests=...)", "EditRequest(", _wired(Editor.evaluate, "as_requests")),
    ("evaluate-metrics-unknown", lambda e: e.evaluate(_request(), metrics=["bogus"]), ArgumentError,
     "unknown metric 'bogus'", "known metrics", _wired(Editor.evaluate, "check_metrics")),
    ("evaluate-metrics-str", lambda e: e.evaluate(_request(), metrics="reliability"), ArgumentError,
     "got a str", "pass a list of metric names", _wired(Editor.evaluate, "check_metrics")),
    ("edit-str", lambda e: e.edit("The capital of France is Rome", "add"), RequestError,
     "edit(requests=...)", "EditRequest(prompt=", _wired(Editor.edit, "as_requests")),
    ("edit-dict", lambda e: e.edit(dict(GOOD), "add"), RequestError,
     "edit(requests=...)", "EditRequest(", _wired(Editor.edit, "as_requests")),
    ("edit-too-long", lambda e: e.edit(_request(prompt=LONG), "add"), RequestError,
     "prompt + target_new is", "shorten the prompt", _wired(Editor.edit, "check_fits")),
    ("answer-int", lambda e: e.answer(5), RequestError,
     "prompt", "pass the prompt as text", _wired(Editor.answer, "check_prompt")),
    ("answer-none", lambda e: e.answer(None), RequestError,
     "prompt", "pass the prompt as text", _wired(Editor.answer, "check_prompt")),
]


@pytest.mark.parametrize("call,error,field,fix", [
    pytest.param(*c[1:5], id=c[0], marks=c[5]) for c in EDITOR_CASES])
def test_editor_refuses(editor, call, error, field, fix):
    state = state_copy(editor.model)
    with pytest.raises(error) as info:
        call(editor)
    message = str(info.value)
    assert field in message and fix in message, message
    assert_same_state(editor.model, state)
    assert editor.edits == []


def test_editor_edit_of_an_unknown_method_leaves_the_model(editor):
    state = state_copy(editor.model)
    with pytest.raises(MethodError, match="unknown method 'nosuch'; installed methods: add"):
        editor.edit(_request(), "nosuch")
    assert_same_state(editor.model, state)


# ---------------------------------------------------------------------------------------------
# Loading models: every problem is a ModelLoadError naming the path or value and the fix.
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input-model")
    tiny_model("gpt2").save_pretrained(root)
    tiny_tokenizer().save_pretrained(root)
    return root


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


LOAD_CASES: list[tuple[str, Callable[[Path, Path], dict[str, Any]], str, str]] = [
    ("missing-path", lambda m, t: dict(name_or_path=t / "nowhere"), "no such model folder",
     "give an existing folder"),
    ("relative-missing-path", lambda m, t: dict(name_or_path="./no/such/model"), "no such model folder",
     "editmethods models"),
    ("dtype-float33", lambda m, t: dict(name_or_path=m, dtype="float33"), "unknown dtype 'float33'",
     "use one of float32"),
    ("dtype-int", lambda m, t: dict(name_or_path=m, dtype=5), "unknown dtype 5", "use one of"),
    ("dtype-int8", lambda m, t: dict(name_or_path=m, dtype="int8"), "unknown dtype 'int8'",
     "use one of"),
    ("device-bogus", lambda m, t: dict(name_or_path=m, device="gpu7"), "bad device 'gpu7'",
     "use cpu, cuda"),
    ("gguf-not-in-folder", lambda m, t: dict(name_or_path=m, gguf_file="model.gguf"),
     "has no GGUF file 'model.gguf'", "it has no .gguf file"),
    ("missing-gguf-file", lambda m, t: dict(name_or_path=t / "gone.gguf"), "no such GGUF file",
     "gone.gguf"),
    ("empty-folder", lambda m, t: dict(name_or_path=_mkdir(t / "empty")), "cannot load model",
     "config.json"),
    ("gguf-sha-without-gguf", lambda m, t: dict(name_or_path=m, gguf_sha256="0" * 64),
     "gguf_sha256 was given", "pass gguf_file too"),
    ("name-none", lambda m, t: dict(name_or_path=None), "name_or_path must be a non-empty str",
     "hub id"),
    ("name-int", lambda m, t: dict(name_or_path=5), "got int 5", "give a model folder"),
    ("name-blank", lambda m, t: dict(name_or_path="  "), "name_or_path must be a non-empty str",
     "an alias"),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("make,field,fix", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_from_pretrained_refuses(model_dir, tmp_path, make, field, fix):
    digest = _folder_digest(model_dir)
    with pytest.raises(ModelLoadError) as info:
        Editor.from_pretrained(**make(model_dir, tmp_path), plugins=make_plugins())
    message = str(info.value)
    assert field in message and fix in message, message
    assert _folder_digest(model_dir) == digest


# ---------------------------------------------------------------------------------------------
# Loaders: files and records.
EASY = {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome",
        "ground_truth": "Paris", "rephrase_prompt": "France's capital is",
        "locality_prompt": "The capital of Spain is", "locality_ground_truth": "Madrid"}
CF = {"case_id": 0,
      "requested_rewrite": {"prompt": "The capital of {} is", "subject": "France",
                            "target_new": {"str": "Rome"}, "target_true": {"str": "Paris"}},
      "paraphrase_prompts": ["France's capital is"], "neighborhood_prompts": ["The capital of Spain is"]}


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(record))
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()


def _cf(**rewrite: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(CF))
    for key, value in rewrite.items():
        if value is _DROP:
            out["requested_rewrite"].pop(key)
        else:
            out["requested_rewrite"][key] = value
    return out


# (id, file bytes or records, load_requests keyword arguments, error, field, fix)
LOADER_CASES: list[tuple[str, Any, dict[str, Any], type, str, str]] = [
    ("file-missing", None, {}, DatasetError, "no such data file", "give the path of a .json"),
    ("file-is-folder", "FOLDER", {}, DatasetError, "is a folder, not a data file", "give a .json"),
    ("file-not-json", b"this is not json\n{", {}, DatasetError, "neither JSON nor JSON lines",
     "data.json"),
    ("file-not-utf8", b"\xff\xfe[\x00]", {}, DatasetError, "not UTF-8 text", "in UTF-8"),
    ("file-empty", b"", {}, DatasetError, "no records", "data.json"),
    ("file-json-scalar", b"5", {}, DatasetError, "expected a JSON list of records", "got a JSON number"),
    ("file-json-string", b'"records"', {}, DatasetError, "expected a JSON list of records",
     "got a JSON string"),
    ("file-json-null", b"null", {}, DatasetError, "expected a JSON list", "got a JSON null"),
    ("file-empty-list", b"[]", {}, DatasetError, "no records", "data.json"),
    ("file-object-of-scalars", b'{"a": 1, "b": 2}', {}, DatasetError, "unrecognized record keys (a, b)",
     "pass format="),
    ("records-not-objects", [1, 2], {}, DatasetError, "expected a JSON object per record", "got int"),
    ("record-unknown-keys", [{"question": "x"}], {}, DatasetError, "unrecognized record keys (question)",
     "expected one of counterfact"),
    ("easyedit-missing-subject", [_with(EASY, subject=_DROP)], {}, DatasetError,
     "record 0 (easyedit): field 'subject' is missing", "'subject'"),
    ("easyedit-prompt-int", [_with(EASY, prompt=5)], {}, DatasetError,
     "field 'prompt' must be a string", "got int (5)"),
    ("easyedit-target-dict", [_with(EASY, target_new={"a": 1})], {}, DatasetError,
     "field 'target_new' must be a string", "got dict ({'a': 1})"),
    ("easyedit-target-list-of-int", [_with(EASY, target_new=[5])], {}, DatasetError,
     "field 'target_new' must be a string", "got list ([5])"),
    ("easyedit-target-empty", [_with(EASY, target_new="  ")], {}, DatasetError,
     "field 'target_new' is empty", "give a non-empty string"),
    ("easyedit-target-zero-width", [_with(EASY, target_new="\u200b")], {}, DatasetError,
     "record 0 (easyedit): edit request 0: target_new '\\u200b' has no visible",
     "give the new answer"),
    ("easyedit-target-equals-truth", [_with(EASY, target_new="Paris")], {}, DatasetError,
     "target_new 'Paris' is the same as ground_truth", "give a new target_new"),
    ("easyedit-ground-truth-int", [_with(EASY, ground_truth=5)], {}, DatasetError,
     "field 'ground_truth' must be a string", "got int (5)"),
    ("easyedit-ground-truth-dict", [_with(EASY, ground_truth={"x": 1})], {}, DatasetError,
     "field 'ground_truth' must be a string", "got dict"),
    ("easyedit-rephrase-item-int", [_with(EASY, rephrase_prompt=["France's capital is", 5])], {},
     DatasetError, "field 'rephrase_prompt[1]' must be a string", "got int (5)"),
    ("easyedit-rephrase-dict", [_with(EASY, rephrase_prompt={"a": 1})], {}, DatasetError,
     "field 'rephrase_prompt' must be a list of strings", "got dict"),
    ("easyedit-locality-answer-int", [_with(EASY, locality_ground_truth=5)], {}, DatasetError,
     "field 'locality_ground_truth' must be a string", "got int (5)"),
    ("easyedit-locality-answer-missing", [_with(EASY, locality_ground_truth=_DROP)], {}, DatasetError,
     "field 'locality_ground_truth' is missing", "locality_ground_truth"),
    ("counterfact-missing-target", [_cf(target_new=_DROP)], {}, DatasetError,
     "field 'requested_rewrite.target_new' is missing", "record 0"),
    ("counterfact-no-placeholder", [_cf(prompt="The capital of France is")], {}, DatasetError,
     "field 'requested_rewrite.prompt' must contain '{}'", "where the subject goes"),
    ("counterfact-target-str-int", [_cf(target_new={"str": 5})], {}, DatasetError,
     "field 'requested_rewrite.target_new' must be a string", "got dict ({'str': 5})"),
    ("counterfact-neighbourhood-item-int", [_with(CF, neighborhood_prompts=[3])], {}, DatasetError,
     "field 'neighborhood_prompts[0]' must be a string", "got int (3)"),
    ("counterfact-relation-specificity-not-object",
     [_with(CF, relation_specificity=["France speaks"])], {}, DatasetError,
     "field 'relation_specificity[0]' must be an object", "got str"),
    ("counterfact-relation-specificity-missing-key",
     [_with(CF, relation_specificity=[{"prompt": "France speaks"}])], {}, DatasetError,
     "field 'relation_specificity[0]' must have 'prompt' and 'ground_truth'", "'ground_truth' is missing"),
    ("counterfact-portability-prompt-int",
     [_with(CF, portability=[{"prompt": 3, "ground_truth": "x"}])], {}, DatasetError,
     "field 'portability[0].prompt' must be a string", "got int (3)"),
    ("knowedit-locality-not-object",
     [{"subject": "France", "prompt": "The capital of France is", "target_new": "Rome",
       "locality": {"Relation_Specificity": "France speaks"}}], {}, DatasetError,
     "field 'locality.Relation_Specificity' must be a list", "got str"),
    ("knowedit-wikibio", [{"text": "x", "labels": "y", "concept": "z"}], {}, DatasetError,
     "KnowEdit WikiBio records", "cannot be loaded as edit requests"),
    ("format-unknown", [EASY], dict(format="csv"), DatasetError, "unknown format 'csv'",
     "choose one of counterfact"),
    ("format-not-str", [EASY], dict(format=3), ArgumentError, "load_requests(format=...): must be a str",
     "one of counterfact"),
    ("limit-negative", [EASY], dict(limit=-1), ArgumentError, "load_requests(limit=-1)",
     "must be an int >= 1"),
    ("limit-zero", [EASY], dict(limit=0), ArgumentError, "load_requests(limit=0)", "must be an int >= 1"),
    ("limit-str", [EASY], dict(limit="5"), ArgumentError, "load_requests(limit='5')", "must be an int"),
    ("offset-negative", [EASY], dict(offset=-1), ArgumentError, "load_requests(offset=-1)",
     "must be an int >= 0"),
    ("offset-past-the-end", [EASY, EASY], dict(offset=2), DatasetError, "offset 2 skips every record",
     "give an offset below 2"),
    ("on-error-unknown", [EASY], dict(on_error="ignore"), ArgumentError, "on_error='ignore'",
     "use 'raise' or 'skip'"),
    ("source-one-record", "RECORD", {}, ArgumentError, "got one record (a dict)", "pass a list of records"),
    ("source-int", "INT", {}, ArgumentError, "got int (5)", "pass the path of a data file"),
    ("pkg-not-installed", "PKG", {}, DatasetError, "package 'no_such_package_xyz' is not installed",
     "pip install no-such-package-xyz"),
]


@pytest.mark.parametrize("content,kwargs,error,field,fix", [c[1:] for c in LOADER_CASES],
                         ids=[c[0] for c in LOADER_CASES])
def test_loader_refuses(tmp_path, content, kwargs, error, field, fix):
    source: Any = tmp_path / "data.json"
    if content == "FOLDER":
        source.mkdir()
    elif content == "RECORD":
        source = dict(EASY)
    elif content == "INT":
        source = 5
    elif content == "PKG":
        source = "pkg:no_such_package_xyz/data.json"
    elif isinstance(content, bytes):
        source.write_bytes(content)
    elif isinstance(content, list):
        source = content
    with pytest.raises(error) as info:
        load_requests(source, **kwargs)
    message = str(info.value)
    assert isinstance(info.value, EditmethodsError)
    assert field in message and fix in message, message


# ---------------------------------------------------------------------------------------------
# The command line, run in-process through editmethods.cli.main(argv).
@pytest.fixture(autouse=True)
def only_ft(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ft")
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def loads(monkeypatch) -> list[Any]:
    """Records every model load; a case that must fail before loading asserts it is empty."""
    import editmethods.model_loading as model_loading

    calls: list[Any] = []
    real = model_loading.load_pretrained

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_loading, "load_pretrained", recording)
    return calls


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, model_dir) -> Path:
    root = tmp_path_factory.mktemp("bad-input-cli")
    (root / "data.json").write_text(json.dumps([CF]))
    (root / "long.json").write_text(json.dumps([_cf(prompt="{} is " + "very " * 80 + "big")]))
    (root / "notjson.json").write_text("this is not json {")
    (root / "a-file").write_text("")
    (root / "folder").mkdir()
    (root / "corpus.txt").write_text("The capital of France is Paris\n")
    return root


def _is_progress(line: str) -> bool:
    return re.search(r"\|\s*\d+/\d+ \[[^]]*\]\s*$", line) is not None


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from editmethods.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


EDIT = ["edit", "--model", "{model}", "--method", "ft", "--prompt", "The capital of France is",
        "--subject", "France", "--target", "Rome"]
EVAL = ["eval", "--model", "{model}", "--method", "ft", "--data", "{ws}/data.json", "--no-progress"]
TRACE = ["trace", "--model", "{model}", "--prompt", "The capital of France is", "--subject", "France",
         "--samples", "1", "--kind", "hidden", "--out", "{tmp}/trace.png"]
STATS = ["stats", "--model", "{model}", "--layers", "0", "--corpus", "{ws}/corpus.txt", "-n", "1"]


def _set(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    if option in out:
        out[out.index(option) + 1] = value
    else:
        out += [option, value]
    return out


# (id, argv, exit code, parts of stderr, whether the model may be loaded)
CLI_CASES: list[tuple[str, list[str], int, tuple[str, ...], bool]] = [
    ("edit-missing-model", _set(EDIT, "--model", "{tmp}/nowhere"), 1,
     ("no such model folder", "give an existing folder"), True),
    ("eval-missing-model", _set(EVAL, "--model", "{tmp}/nowhere"), 1,
     ("no such model folder", "give an existing folder"), True),
    ("trace-missing-model", _set(TRACE, "--model", "{tmp}/nowhere"), 1,
     ("no such model folder", "give an existing folder"), True),
    ("stats-missing-model", _set(STATS, "--model", "{tmp}/nowhere"), 1,
     ("no such model folder", "give an existing folder"), True),
    ("edit-model-is-a-file", _set(EDIT, "--model", "{ws}/a-file"), 1, ("cannot load model", "a-file"), True),
    ("edit-empty-model-folder", _set(EDIT, "--model", "{ws}/folder"), 1,
     ("cannot load model", "config.json"), True),
    ("edit-unknown-method", _set(EDIT, "--method", "nosuch"), 1,
     ("unknown method 'nosuch'", "installed methods: ft"), False),
    ("eval-unknown-method", _set(EVAL, "--method", "nosuch"), 1,
     ("unknown method 'nosuch'", "installed methods: ft"), False),
    # the loader is called, and refuses before it reads anything
    ("edit-dtype", EDIT + ["--dtype", "float33"], 1, ("unknown dtype 'float33'", "use one of"), True),
    ("edit-device", EDIT + ["--device", "gpu7"], 1, ("bad device 'gpu7'", "use cpu"), True),
    ("edit-target-zero-width", _set(EDIT, "--target", "\u200b"), 1,
     ("target_new '\\u200b' has no visible", "give the new answer"), False),
    ("edit-target-whitespace", _set(EDIT, "--target", " \t "), 1,
     ("target_new is empty", "give the new answer"), False),
    ("edit-target-bom", _set(EDIT, "--target", "\ufeff"), 1,
     ("target_new '\\ufeff'", "give the new answer"), False),
    ("edit-subject-not-in-prompt", _set(EDIT, "--subject", "Spain"), 1,
     ("subject 'Spain' does not occur", "must appear verbatim"), False),
    ("edit-prompt-trailing-space", _set(EDIT, "--prompt", "The capital of France is "), 1,
     ("prompt ends with whitespace", "remove the trailing space"), False),
    ("edit-prompt-too-long", _set(EDIT, "--prompt", LONG), 1,
     ("prompt + target_new is", "shorten the prompt"), True),
    ("edit-save-into-a-file", EDIT + ["--save", "{ws}/a-file/edit"], 1,
     ("--save", "is a file, so no folder can be made below it"), False),
    ("edit-save-is-a-file", EDIT + ["--save", "{ws}/a-file"], 1,
     ("--save", "this is a file, not a folder"), False),
    ("edit-missing-option", EDIT[:-2], 2, ("Missing option '--target'",), False),
    ("eval-unknown-metric", EVAL + ["--metrics", "reliability,bogus"], 1,
     ("--metrics: unknown metric 'bogus'", "known metrics: reliability"), False),
    ("eval-empty-metrics", EVAL + ["--metrics", ",,"], 2, ("--metrics", "give comma-separated names"), False),
    ("eval-negative-n", EVAL + ["-n", "-1"], 2, ("-n", "-1 is not in the range x>=1"), False),
    ("eval-zero-n", EVAL + ["-n", "0"], 2, ("-n", "0 is not in the range x>=1"), False),
    ("eval-n-not-int", EVAL + ["-n", "ten"], 2, ("-n", "'ten' is not a valid integer"), False),
    ("eval-negative-offset", EVAL + ["--offset", "-3"], 2, ("--offset", "x>=0"), False),
    ("eval-offset-past-the-end", EVAL + ["--offset", "5"], 1,
     ("offset 5 skips every record", "give an offset below 1"), False),
    ("eval-data-missing", _set(EVAL, "--data", "{tmp}/none.json"), 1,
     ("no such data file", "give the path of a .json"), False),
    ("eval-data-folder", _set(EVAL, "--data", "{ws}/folder"), 1,
     ("is a folder, not a data file", "give a .json"), False),
    ("eval-data-not-json", _set(EVAL, "--data", "{ws}/notjson.json"), 1,
     ("neither JSON nor JSON lines", "notjson.json"), False),
    ("eval-unknown-format", EVAL + ["--format", "csv"], 1, ("unknown format 'csv'", "choose one of"), False),
    ("eval-bad-mode", EVAL + ["--mode", "parallel"], 2, ("--mode", "'parallel' is not one of"), False),
    ("eval-out-below-a-file", EVAL + ["--out", "{ws}/a-file/report.json"], 1,
     ("--out", "is a file, so no file can be made below it"), False),
    ("eval-out-is-a-folder", EVAL + ["--out", "{ws}/folder"], 2, ("--out", "is a directory"), False),
    ("eval-prompt-too-long", _set(EVAL, "--data", "{ws}/long.json"), 1,
     ("prompt + target_new is", "shorten the prompt"), True),
    ("trace-subject-not-in-prompt", _set(TRACE, "--subject", "Spain"), 1,
     ("subject 'Spain' does not occur", "must appear verbatim"), False),
    ("trace-samples-zero", _set(TRACE, "--samples", "0"), 2, ("--samples", "x>=1"), False),
    ("trace-window-zero", TRACE + ["--window", "0"], 2, ("--window", "x>=1"), False),
    ("trace-noise-negative", TRACE + ["--noise", "-1"], 2, ("--noise", "x>=0"), False),
    ("trace-answer-invisible", TRACE + ["--answer", "\u2060"], 1,
     ("answer '\\u2060' has no visible", "give the answer to trace"), False),
    ("trace-unknown-kind", _set(TRACE, "--kind", "neurons"), 2, ("--kind", "'neurons' is not one of"), False),
    ("trace-out-below-a-file", _set(TRACE, "--out", "{ws}/a-file/trace.png"), 1,
     ("--out", "is a file, so no file can be made below it"), False),
    ("trace-json-below-a-file", TRACE + ["--json", "{ws}/a-file/scores.json"], 1,
     ("--json", "is a file, so no file can be made below it"), False),
    ("stats-layers-not-ints", _set(STATS, "--layers", "a,b"), 2,
     ("--layers", "expected comma-separated integers"), False),
    ("stats-layers-float", _set(STATS, "--layers", "1.5"), 2,
     ("--layers", "expected comma-separated integers"), False),
    ("stats-layers-empty", _set(STATS, "--layers", ","), 2, ("--layers", "no layer indices"), False),
    ("stats-layer-negative", _set(STATS, "--layers", "-1"), 2, ("--layers", "count from 0"), False),
    ("stats-layer-out-of-range", _set(STATS, "--layers", "0,99"), 1,
     ("layer 99 is outside the model", "has layers 0..1"), True),
    ("stats-n-zero", _set(STATS, "-n", "0"), 2, ("-n", "x>=1"), False),
    ("stats-max-length-zero", STATS + ["--max-length", "0"], 2, ("--max-length", "x>=1"), False),
    ("stats-corpus-unknown", _set(STATS, "--corpus", "no-such-corpus"), 1,
     ("no-such-corpus", "give the path of a text file"), True),
    ("stats-corpus-missing-file", _set(STATS, "--corpus", "{tmp}/none/corpus.txt"), 1,
     ("corpus path", "does not exist"), True),
    ("stats-export-below-a-file", STATS + ["--export", "{ws}/a-file/npz"], 1,
     ("--export", "is a file, so no folder can be made below it"), False),
    ("stats-export-is-a-file", STATS + ["--export", "{ws}/a-file"], 2, ("--export", "is a file"), False),
    ("unknown-command", ["frobnicate"], 2, ("No such command 'frobnicate'",), False),
    ("bench-unknown-metric", ["bench", "--model", "{model}", "--data", "{ws}/data.json", "--method",
                              "ft", "--out-dir", "{tmp}/out", "--metrics", "effficacy"], 1,
     ("--metrics: unknown metric 'effficacy'", "known metrics:"), False),
    ("bench-negative-n", ["bench", "--model", "{model}", "--data", "{ws}/data.json", "--method", "ft",
                          "-n", "-2"], 2, ("-n", "x>=1"), False),
]


@pytest.mark.parametrize("argv,code,parts,may_load", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_refuses(workspace, model_dir, tmp_path, capsys, loads, argv, code, parts, may_load):
    check_cli_refusal(workspace, model_dir, tmp_path, capsys, loads, argv, code, parts, may_load)


def test_cli_trace_without_matplotlib(workspace, model_dir, tmp_path, capsys, monkeypatch, loads):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    check_cli_refusal(workspace, model_dir, tmp_path, capsys, loads, TRACE, 1,
                      ("needs matplotlib", "pip install 'editmethods[plots]'"), False)


def check_cli_refusal(workspace, model_dir, tmp_path, capsys, loads, argv, code, parts, may_load):
    digest = _folder_digest(model_dir)
    args = [a.format(model=model_dir, ws=workspace, tmp=tmp_path) for a in argv]
    got, out, err = run_cli(args, capsys)
    assert "Traceback" not in out + err
    assert got == code, err
    # transformers' progress bar of a model that did load is not part of the error
    lines = [line for line in err.strip().splitlines() if line.strip() and not _is_progress(line)]
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("Error: "), err
    else:  # a usage error: click's usage lines, then the error
        assert lines[-1].startswith("Error: "), err
    for part in parts:
        assert part in err, err
    if not may_load:
        assert loads == [], "the model was loaded before the bad input was refused"
    assert _folder_digest(model_dir) == digest


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write into read-only folders")
def test_cli_out_into_a_read_only_folder(workspace, model_dir, tmp_path, capsys, loads):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        got, _, err = run_cli([a.format(model=model_dir, ws=workspace, tmp=tmp_path) for a in EVAL]
                              + ["--out", str(ro / "report.json")], capsys)
    finally:
        ro.chmod(0o700)
    assert got == 1 and "is read-only" in err and "--out" in err and loads == []


def test_cli_out_into_a_read_only_folder_as_seen_by_os_access(workspace, model_dir, tmp_path, capsys,
                                                              monkeypatch, loads):
    # The same refusal where the test runs as root (who may write anywhere): os.access says no.
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    args = [a.format(model=model_dir, ws=workspace, tmp=tmp_path) for a in EVAL]
    got, _, err = run_cli(args + ["--out", str(ro / "report.json")], capsys)
    assert got == 1 and "the folder" in err and "is read-only" in err and "--out" in err
    assert len(err.strip().splitlines()) == 1 and loads == []


def test_cli_unexpected_error_is_one_line(workspace, model_dir, capsys, monkeypatch):
    # A bug (any exception that is not an EditmethodsError) still ends in one line, not a
    # traceback; EDITMETHODS_DEBUG=1 lets it through.
    import editmethods.evaluation.loaders as loaders

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(loaders, "load_requests", broken)
    args = [a.format(model=model_dir, ws=workspace, tmp=workspace) for a in EVAL]
    got, _, err = run_cli(args, capsys)
    assert got == 1 and len(err.strip().splitlines()) == 1
    assert "unexpected KeyError: 'boom'" in err and "EDITMETHODS_DEBUG=1" in err
    monkeypatch.setenv("EDITMETHODS_DEBUG", "1")
    from editmethods.cli import main

    with pytest.raises(KeyError):
        main(args)


# ---------------------------------------------------------------------------------------------
# Causal tracing's own arguments (the API under the trace command).
TRACE_CASES: list[tuple[str, dict[str, Any], type, str, str]] = [
    ("kind-unknown", dict(kind="neurons"), ArgumentError, "kind 'neurons'", "one of hidden, mlp, attn"),
    ("samples-zero", dict(samples=0), ArgumentError, "samples must be an int >= 1", "got 0"),
    ("samples-float", dict(samples=2.5), ArgumentError, "samples must be an int >= 1", "got 2.5"),
    ("window-zero", dict(window=0), ArgumentError, "window must be an int >= 1", "got 0"),
    ("noise-negative", dict(noise=-1.0), ArgumentError, "noise must be a finite number >= 0", "got -1.0"),
    ("noise-nan", dict(noise=float("nan")), ArgumentError, "noise must be a finite number >= 0", "got nan"),
    ("prompt-int", dict(prompt=5), RequestError, "prompt must be a str, got int", "give the text"),
    ("subject-missing", dict(subject="Spain"), RequestError, "subject 'Spain' does not occur",
     "must appear verbatim"),
    ("answer-empty", dict(answer=" "), RequestError, "answer is empty", "give the answer to trace"),
]


@pytest.mark.parametrize("changes,error,field,fix", [c[1:] for c in TRACE_CASES],
                         ids=[c[0] for c in TRACE_CASES])
def test_causal_trace_refuses(changes, error, field, fix):
    from editmethods.toolkit.causal_trace import causal_trace

    model = tiny_model("gpt2")
    state = state_copy(model)
    kwargs: dict[str, Any] = dict(prompt="The capital of France is", subject="France", progress=False)
    kwargs.update(changes)
    with pytest.raises(error) as info:
        causal_trace(model, tiny_tokenizer(), kwargs.pop("prompt"), kwargs.pop("subject"), **kwargs)
    assert field in str(info.value) and fix in str(info.value), str(info.value)
    assert_same_state(model, state)


def test_plot_without_matplotlib_names_the_install(monkeypatch, tmp_path):
    from editmethods.toolkit.causal_trace import plot_traces

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"needs matplotlib.*pip install 'editmethods\[plots\]'"):
        plot_traces([], tmp_path / "x.png")


def test_architecture_errors_are_editmethods_errors():
    # a layer out of range through the API (the stats command's check)
    from editmethods.architectures import resolve
    from editmethods.plugins import Plugins

    model = tiny_model("gpt2")
    arch = resolve(model, Plugins(entry_points=False).architectures())
    with pytest.raises(ArchitectureError, match=r"layer 7 is outside the model: gpt2 has layers 0\.\.1"):
        arch.check_layer(model, 7)


# ---------------------------------------------------------------------------------------------
# The reference model the adversarial tester used (skipped when it is not built).
@pytest.fixture(scope="module")
def testbed() -> Editor:
    testing = pytest.importorskip("editmethods_testbed.testing")
    path = testing.require_reference("gpt2", splits=())
    return Editor.from_pretrained(path, plugins=make_plugins())


def test_testbed_gpt2_prompt_longer_than_its_context(testbed):
    state = state_copy(testbed.model)
    assert context_length(testbed.model) == (128, "n_positions")
    long = "The capital of France is " + "very " * 200 + "much"
    with pytest.raises(RequestError, match=r"more than the model's context of 128 tokens.*"
                                           r"the subject 'France'.*shorten the prompt"):
        check_fits(_request(prompt=long), testbed.model, testbed.tokenizer)
    with pytest.raises(RequestError, match="evaluate"):
        as_requests(["a string"], argument="evaluate(requests=...)")
    assert_same_state(testbed.model, state)


def test_testbed_gpt2_bad_dtype():
    pytest.importorskip("editmethods_testbed")
    with pytest.raises(ModelLoadError, match="unknown dtype 'float33': use one of"):
        Editor.from_pretrained("testbed-gpt2", dtype="float33")
