"""The collapse guard: its probe is deterministic and leaves no trace; it passes unchanged
models and good edits on testbed-gpt2, and refuses a model whose MLP weights were scaled."""

from __future__ import annotations

import attrs
import pytest
import torch

from editmethods import Editor, EditRequest
from editmethods.errors import CollapseError, EditError
from editmethods.guard import DEFAULT_PROMPTS, DEFAULT_TEXTS, Guard, Probe
from editmethods.plugins import ENV_VAR, reset_plugins
from editmethods.testing import (
    assert_no_trace,
    assert_same_state,
    model_trace,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)


@pytest.fixture(scope="module")
def testbed():
    """testbed-gpt2 with the FT, ROME, MEND and testbed plugins only; skips when not built."""
    testing = pytest.importorskip("editmethods_testbed.testing",
                                  reason="editmethods-testbed is not installed")
    testing.require_reference("gpt2")
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_VAR, "ft,rome,mend,testbed")
    reset_plugins()
    try:
        yield Editor.from_pretrained("testbed-gpt2")
    finally:
        mp.undo()
        reset_plugins()


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "t5"])
def test_probe_is_deterministic_and_leaves_no_trace(model_type):
    model, tok = tiny_model(model_type), tiny_tokenizer()
    model.train()
    next(iter(model.children())).eval()  # a mixed mode must come back as it was
    state, trace = state_copy(model), model_trace(model)
    guard = Guard(answer_tokens=2)
    first = guard.probe(model, tok)
    assert first == guard.probe(model, tok)
    assert_same_state(model, state)
    assert_no_trace(model, trace, "after Guard.probe")
    assert len(first.answers) == len(DEFAULT_PROMPTS) and first.perplexity > 1.0
    guard.check(first, guard.probe(model, tok))  # identical probes pass


def test_check_passes_identical_and_refuses_with_the_figures():
    guard = Guard()
    same = Probe(perplexity=4.0, answers=("a",) * 8)
    guard.check(same, same)
    assert guard.ratio(same, same) == 1.0 and guard.agreement(same, same) == 1.0
    worse = Probe(perplexity=9.0, answers=("a",) * 5 + ("b",) * 3)
    with pytest.raises(CollapseError) as info:
        guard.check(same, worse)
    message = str(info.value)
    for figure in ("4 -> 9", "ratio 2.25", "at most 1.5", "5/8", "at least 0.75", "guard=False",
                   "max_perplexity_ratio=2.3", "min_agreement=0.62", repr(DEFAULT_PROMPTS[5])):
        assert figure in message, (figure, message)
    assert isinstance(info.value, EditError)
    # each bound alone refuses; a NaN perplexity is a collapse too
    assert guard.refuses(same, attrs.evolve(same, perplexity=6.1))
    assert guard.refuses(same, attrs.evolve(worse, perplexity=4.0))
    assert guard.refuses(same, attrs.evolve(same, perplexity=float("nan")))
    assert not Guard(max_perplexity_ratio=3.0, min_agreement=0.6).refuses(same, worse)
    with pytest.raises(ValueError, match="probe both with this guard"):
        guard.check(same, Probe(perplexity=4.0, answers=("a",)))


def test_bad_settings_refused():
    with pytest.raises(ValueError, match="min_agreement"):
        Guard(min_agreement=1.5)
    with pytest.raises(ValueError):
        Guard(max_perplexity_ratio=0.9)
    with pytest.raises(ValueError, match="texts"):
        Guard(texts=())
    assert Guard().texts == DEFAULT_TEXTS


def test_refuses_a_model_whose_mlp_weights_were_scaled(testbed):
    guard = Guard()
    model, tok = testbed.model, testbed.tokenizer
    before = guard.probe(model, tok)
    assert before.answers[:2] == (" Paris", " Tokyo")  # the reference model knows its facts
    weights = [m.mlp.c_proj.weight for m in model.transformer.h]
    saved = [w.detach().clone() for w in weights]
    try:
        with torch.no_grad():
            for w in weights:
                w.mul_(4.0)
        after = guard.probe(model, tok)
        with pytest.raises(CollapseError, match=r"Perplexity on the guard's 4 texts .* -> .*ratio"):
            guard.check(before, after)
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
    assert guard.probe(model, tok) == before


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ft", "rome"])
def test_passes_after_a_good_edit(testbed, method):
    from editmethods.evaluation.benchmarking import reference_hparams

    guard = Guard()
    hparams = reference_hparams(testbed.plugins, method, "testbed-gpt2")
    if hparams is None:
        pytest.skip(f"{method} ships no hyper-parameters for testbed-gpt2 (or is not installed)")
    request = EditRequest(prompt="Wendel Grimoth was born in", subject="Wendel Grimoth",
                          target_new="Warsaw")
    before = guard.probe(testbed.model, testbed.tokenizer)
    handle = testbed.edit(request, method, hparams)
    try:
        assert testbed.answer(request.prompt, max_new_tokens=1).strip() == "Warsaw"
        guard.check(before, guard.probe(testbed.model, testbed.tokenizer))
    finally:
        testbed.rollback(handle)


@pytest.mark.slow
def test_refuses_mends_collapsing_sequence(testbed):
    """MEND's edits of one person's facts in a row on testbed-gpt2 (the split's file order):
    the first two pass, the collapse that follows (answers turn to " a") is refused.
    Measured with benchmarks/guard.py: edit 3 keeps 1 of the 8 answers, perplexity x2.0."""
    from editmethods.evaluation.benchmarking import reference_hparams
    from editmethods.evaluation.loaders import load_requests

    hparams = reference_hparams(testbed.plugins, "mend", "testbed-gpt2")
    if hparams is None:
        pytest.skip("editmethods-mend is not installed")
    guard = Guard()
    requests = load_requests("pkg:editmethods_testbed/data/test.json")[:4]
    previous, verdicts = guard.probe(testbed.model, testbed.tokenizer), []
    try:
        for request in requests:
            testbed.edit(request, "mend", hparams, guard=False)
            after = guard.probe(testbed.model, testbed.tokenizer)
            verdicts.append(guard.refuses(previous, after))
            previous = after
    finally:
        testbed.rollback_all()
    assert verdicts[:2] == [False, False] and True in verdicts[2:], verdicts
