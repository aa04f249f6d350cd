"""Threads on one Editor, and two Editors sharing one model (issue #13, D2): calls run one
at a time, every edit succeeds and is live, and rollback restores the weights bit for bit;
concurrent use of methods that load models (IKE's and SERAC's encoders) leaves no meta
tensors in models loaded afterwards."""

from __future__ import annotations

import threading

import pytest
import torch

from editmethods import Editor, EditRequest
from editmethods.evaluation.benchmarking import reference_hparams
from editmethods.testing import assert_same_state, state_copy

MODEL = "testbed-gpt2"
REQS = [EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
        EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano"),
        EditRequest(prompt="The mother tongue of Danielle Darrieux is", subject="Danielle Darrieux",
                    target_new="English"),
        EditRequest(prompt="Paris is the capital of", subject="Paris", target_new="Italy")]


def _run(targets) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            barrier.wait()
            try:
                fn()
            except BaseException as exc:  # collected and asserted on below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("trial", range(4))
def test_two_threads_editing_one_editor(trial):
    editor = Editor.from_pretrained(MODEL)
    state = state_copy(editor.model)
    hp = {"layers": [1], "num_steps": 4, "lr": 0.01}
    handles = []
    errors = _run([lambda r=r: handles.append(editor.edit(r, "ft", hp)) for r in REQS[:2]])
    assert errors == []
    assert sorted(h.edit_id for h in editor.edits) == sorted(h.edit_id for h in handles)
    errors = _run([lambda h=h: editor.rollback(h) for h in handles])
    assert errors == []
    assert_same_state(editor.model, state)


def test_two_editors_sharing_one_model_edit_evaluate_and_roll_back_in_threads():
    first = Editor.from_pretrained(MODEL)
    second = Editor(first.model, first.tokenizer, plugins=first.plugins)
    state = state_copy(first.model)
    hp = {"layers": [1], "num_steps": 4, "lr": 0.01}
    results = []
    errors = _run([
        lambda: results.append(first.edit(REQS[0], "ft", hp)),
        lambda: results.append(second.edit(REQS[1], "ft", hp)),
        lambda: results.append(second.evaluate(REQS[2:])),
    ])
    assert errors == []
    assert len(first.edits) == 2 and first.ledger is second.ledger
    second.rollback_all()
    assert_same_state(first.model, state)


def test_attaching_methods_in_threads_leave_no_meta_tensors():
    editor = Editor.from_pretrained(MODEL)
    methods = [m for m in ("ike", "serac") if reference_hparams(editor.plugins, m, MODEL)]
    if not methods:
        pytest.skip("neither IKE nor SERAC is installed")
    state = state_copy(editor.model)
    jobs = [lambda m=m, r=r: editor.edit(r, m, reference_hparams(editor.plugins, m, MODEL))
            for m in methods for r in REQS[:2]]
    jobs.append(lambda: Editor.from_pretrained(MODEL))
    errors = _run(jobs)
    assert errors == []
    assert len(editor.edits) == len(jobs) - 1
    fresh = Editor.from_pretrained(MODEL)
    assert not any(p.is_meta for p in fresh.model.parameters())
    assert fresh.answer("The capital of France is")  # a working model
    editor.rollback_all()
    assert_same_state(editor.model, state)
    assert torch.equal(editor.model.get_parameter("transformer.wte.weight"),
                       fresh.model.get_parameter("transformer.wte.weight"))
