import json
from pathlib import Path

import pytest

from editmethods_testbed.from_file import build_from_file, facts_from_records

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _need(name):
    p = DATA / name
    if not p.is_file():
        pytest.skip(f"{p} not found (the shared evaluation data is not part of the repository)")
    return p


def test_formats_are_detected():
    for name in ("counterfact-val.json", "counterfact-original-schema-sample.json", "zsre-train-1k.json"):
        records = json.loads(_need(name).read_text())[:5]
        edits, local = facts_from_records(records)
        assert len(edits) == 5 and all(f.prompt and f.answer for f in edits)
    with pytest.raises(KeyError, match="record 0"):
        facts_from_records([{"foo": 1}])


def test_build_from_counterfact_file(tmp_path):
    path = _need("counterfact-val.json")
    manifest = build_from_file(path, tmp_path / "m", limit=8, steps=10, progress=False,
                               batch_size=4, max_len=64, model_kwargs={"n_layer": 2, "d": 32, "n_head": 2})
    assert set(manifest["recall_percent"]) == {"edit_prompts", "rephrase", "locality"}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(tmp_path / "m")
