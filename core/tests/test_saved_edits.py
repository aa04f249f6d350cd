"""Saved edits cannot be retargeted, tampered with or half-read (issue #13, D3): every kind
of altered or malformed folder is refused with a SavedEditError (or the error of the field
it names) before anything is written, and the model is left exactly as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from editmethods import Editor, EditRequest
from editmethods.errors import EditmethodsError, SavedEditError
from editmethods.saving import TENSORS_NAME, file_sha256
from editmethods.testing import (
    AddMethod,
    assert_same_state,
    make_plugins,
    state_copy,
    tiny_model,
    tiny_tokenizer,
)

REQ = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
HP = {"layers": [0], "value": 0.5}


def _editor(seed: int = 0) -> Editor:
    return Editor(tiny_model("gpt2", seed=seed), tiny_tokenizer(), plugins=make_plugins(AddMethod()))


@pytest.fixture
def saved(tmp_path) -> Path:
    editor = _editor()
    handle = editor.edit(REQ, "add", HP)
    return editor.save_edit(handle, tmp_path / "edit")


def _doc(folder: Path) -> dict:
    return json.loads((folder / "edit.json").read_text())


def _write(folder: Path, doc) -> None:
    (folder / "edit.json").write_text(json.dumps(doc))


def _retensor(folder: Path, change) -> None:
    # rewrite the tensors file consistently (its sha256 updated), as a careful forger would
    tensors = load_file(str(folder / TENSORS_NAME))
    change(tensors)
    save_file(tensors, str(folder / TENSORS_NAME))
    doc = _doc(folder)
    doc["tensors_sha256"] = file_sha256(folder / TENSORS_NAME)
    _write(folder, doc)


def _edit_doc(change):
    def apply(folder: Path) -> None:
        doc = _doc(folder)
        change(doc)
        _write(folder, doc)
    return apply


def _flip_bit(folder: Path) -> None:
    path = folder / TENSORS_NAME
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(folder: Path) -> None:
    path = folder / TENSORS_NAME
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])


def _retarget(doc) -> None:
    doc["deltas"][0]["param"] = doc["deltas"][0]["param"].replace(".h.0.", ".h.1.")


def _retarget_with_hash(doc) -> None:
    # retarget and carry the old hash over under the new name: the tensor differs, refused
    old = doc["deltas"][0]["param"]
    _retarget(doc)
    doc["base_hashes"][doc["deltas"][0]["param"]] = doc["base_hashes"].pop(old)


CASES = {
    "retargeted to another layer": (_edit_doc(_retarget), "base_hashes do not cover"),
    "retargeted with the hash renamed": (_edit_doc(_retarget_with_hash), "different base model"),
    "base_hashes emptied": (_edit_doc(lambda d: d.update(base_hashes={})), "base_hashes' is empty"),
    "base_hashes removed": (_edit_doc(lambda d: d.pop("base_hashes")), "'base_hashes' is missing"),
    "base_hashes a list": (_edit_doc(lambda d: d.update(base_hashes=[])), "'base_hashes' must be dict"),
    "a base hash not a string": (_edit_doc(lambda d: d["base_hashes"].update(
        {k: 1 for k in d["base_hashes"]})), "empty or malformed"),
    "a base hash altered": (_edit_doc(lambda d: d["base_hashes"].update(
        {k: "0" * 64 for k in d["base_hashes"]})), "different base model"),
    "a bit flipped in the tensors": (_flip_bit, "the tensors were altered"),
    "tensors truncated": (_truncate, "the tensors were altered"),
    "tensors_sha256 removed": (_edit_doc(lambda d: d.pop("tensors_sha256")), "'tensors_sha256' is missing"),
    "tensors_sha256 a number": (_edit_doc(lambda d: d.update(tensors_sha256=5)), "must be str"),
    "tensors file deleted": (lambda f: (f / TENSORS_NAME).unlink(), "is not a saved edit"),
    "edit.json deleted": (lambda f: (f / "edit.json").unlink(), "is not a saved edit"),
    "edit.json not JSON": (lambda f: (f / "edit.json").write_text("{not json"), "not valid JSON"),
    "edit.json empty": (lambda f: (f / "edit.json").write_text(""), "not valid JSON"),
    "edit.json a JSON list": (lambda f: (f / "edit.json").write_text("[1, 2]"), "holds a JSON list"),
    "edit.json not UTF-8": (lambda f: (f / "edit.json").write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    "deltas removed": (_edit_doc(lambda d: d.pop("deltas")), "'deltas' is missing"),
    "deltas an object": (_edit_doc(lambda d: d.update(deltas={})), "'deltas' must be list"),
    "a delta not an object": (_edit_doc(lambda d: d.update(deltas=[3])), "deltas\\[0\\] must be an object"),
    "a delta without param": (_edit_doc(lambda d: d["deltas"][0].pop("param")), "'param' is missing"),
    "a delta naming a missing tensor": (_edit_doc(lambda d: d["deltas"][0]["tensors"].update(
        dense="nope")), "does not hold"),
    "a delta with both dense and low-rank": (_edit_doc(lambda d: d["deltas"][0]["tensors"].update(
        left=d["deltas"][0]["tensors"]["dense"])), "malformed"),
    "format version 1": (_edit_doc(lambda d: d.update(format_version=1)), "unsupported format"),
    "another format": (_edit_doc(lambda d: d.update(format="something.else")), "unsupported format"),
    "model_type changed": (_edit_doc(lambda d: d.update(model_type="llama")), "made on a 'llama' model"),
    "unknown method": (_edit_doc(lambda d: d.update(method="no-such-method")), "no-such-method"),
    "hparams invalid": (_edit_doc(lambda d: d["hparams"].update(value=-1)), "value"),
    "hparams unknown key": (_edit_doc(lambda d: d["hparams"].update(bogus=1)), "bogus"),
    "requests empty": (_edit_doc(lambda d: d.update(requests=[])), "'requests' is empty"),
    "a request with an unknown key": (_edit_doc(lambda d: d["requests"][0].update(extra=1)), "malformed"),
    "a request not an object": (_edit_doc(lambda d: d.update(requests=["x"])), "must be an object"),
    "location layers out of range": (_edit_doc(lambda d: d["location"].update(layers=[99])), "99"),
    "payload naming a missing tensor": (_edit_doc(lambda d: d.update(payload=["ghost"])), "does not hold"),
    "a delta of the wrong shape": (lambda f: _retensor(f, lambda t: t.update(
        {k: torch.zeros(3, 3) for k in t})), "has shape"),
    "a delta with NaN": (lambda f: _retensor(f, lambda t: t.update(
        {k: torch.full_like(v, float("nan")) for k, v in t.items()})), "finite|NaN|nan"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_altered_saved_edit_is_refused_and_changes_nothing(saved, case):
    alter, message = CASES[case]
    alter(saved)
    editor = _editor()
    state = state_copy(editor.model)
    with pytest.raises(EditmethodsError, match=message):
        editor.load_edit(saved)
    assert_same_state(editor.model, state)
    assert editor.edits == [] and not editor.ledger.log


def test_an_edit_is_refused_on_another_base_model(saved):
    other = _editor(seed=5)
    state = state_copy(other.model)
    with pytest.raises(SavedEditError, match="different base model"):
        other.load_edit(saved)
    assert_same_state(other.model, state)


def test_a_saved_edit_reapplies_identically(saved):
    made = _editor()
    made.edit(REQ, "add", HP)
    fresh = _editor()
    fresh.load_edit(saved)
    assert_same_state(fresh.model, state_copy(made.model))


def test_a_path_that_is_a_file_is_not_a_saved_edit(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(SavedEditError, match="is not a saved edit"):
        _editor().load_edit(path)


def test_saving_into_an_unwritable_place_is_refused(tmp_path):
    editor = _editor()
    handle = editor.edit(REQ, "add", HP)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SavedEditError, match="choose a writable path"):
        editor.save_edit(handle, blocker / "edit")
    assert editor.edits == [handle]
