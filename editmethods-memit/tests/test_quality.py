"""A small batch of real edits on the reference models: a regression in MEMIT's math fails
here. Skipped (with the reason) while the reference models are not built."""

import pytest

testing = pytest.importorskip("editmethods_testbed.testing",
                              reason="editmethods-testbed is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_memit_batch_on_the_reference_model(arch):
    import editmethods_testbed
    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests
    from editmethods.hparams import load_hparams
    from editmethods_memit import MEMITHyperParams, hparams_path

    editor = Editor.from_pretrained(testing.require_reference(arch))
    data = editmethods_testbed.data_path("test")
    # ten different people (the split lists each person's five facts together; several facts
    # of one person in a batch share a key and are a harder, separate case)
    requests, seen = [], set()
    for r in load_requests(data, limit=60):
        if r.subject not in seen and len(requests) < 10:
            seen.add(r.subject)
            requests.append(r)
    # fewer statistics samples than the shipped file, so that a cold cache stays fast
    hp = load_hparams(MEMITHyperParams, hparams_path(f"testbed-{arch}"), method="memit",
                      mom2_n_samples=3000)
    handle = editor.edit(requests, "memit", hp)
    report = editor.evaluate(requests, metrics=["efficacy", "neighborhood"])
    editor.rollback(handle)
    print(report.format())
    # the floors for a batch of 100 (measured here: 1.00 / 0.96 on GPT-2, 1.00 / 0.98 on
    # LLaMA); the earlier reference builds gave about 0.7 neighborhood here at 100
    assert report["efficacy"].value >= 0.9, report.format()
    assert report["neighborhood"].value >= 0.85, report.format()
