"""IKE's quality on the bundled GPT-2 reference model (a few edits of its test split)."""

import warnings

import pytest

pytestmark = pytest.mark.slow

tb = pytest.importorskip("editmethods_testbed", reason="editmethods-testbed is not installed")
from editmethods_testbed.testing import require_reference  # noqa: E402


def test_ike_edits_the_reference_model_in_context():
    model = require_reference(splits=("test", "train"))
    from editmethods import Editor
    from editmethods.evaluation.loaders import load_requests
    from editmethods_ike import hparams_path

    editor = Editor.from_pretrained(model)
    requests = load_requests(tb.data_path("test"), limit=12)
    base = editor.evaluate(requests, metrics=("reliability",))["reliability"].value
    eff, para, loc = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in requests:
            handle = editor.edit(r, "ike", hparams_path("testbed-gpt2"))
            report = editor.evaluate([r], metrics=("reliability", "generalization", "locality"))
            eff += report["reliability"].per_case
            para += report["generalization"].per_case
            loc += report["locality"].per_case
            editor.rollback(handle)
    efficacy, paraphrase = sum(eff) / len(eff), sum(para) / len(para)
    print(f"IKE on testbed-gpt2: efficacy {efficacy:.3f} (unedited {base:.3f}), "
          f"paraphrase {paraphrase:.3f}, locality {sum(loc) / len(loc):.3f}")
    assert efficacy >= 0.8 and efficacy > base + 0.5
    assert paraphrase >= 0.6
