"""Dataset loaders: every format to EditRequest, detection, and errors naming record and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from editmethods.evaluation.loaders import DatasetError, detect_format, load_requests, read_records

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real data samples live in ../shared/data)")
    return path


CF = {
    "case_id": 7,
    "requested_rewrite": {"prompt": "The mother tongue of {} is ", "relation_id": "P103",
                          "target_new": {"str": "English", "id": "Q1860"},
                          "target_true": {"str": "French", "id": "Q150"},
                          "subject": "Danielle Darrieux"},
    "paraphrase_prompts": ["Danielle Darrieux spoke the language"],
    "neighborhood_prompts": ["The mother tongue of Léon Blum is"],
    "attribute_prompts": ["The mother tongue of Douglas Adams is"],
    "generation_prompts": ["Danielle Darrieux's mother tongue is"],
    "portability": [{"prompt": "The language Danielle Darrieux writes in is", "ground_truth": "English"}],
    "relation_specificity": [{"prompt": "Danielle Darrieux was born in", "ground_truth": "Bordeaux"}],
}


def test_counterfact_original_schema_with_extension_keys():
    (r,) = load_requests([CF])
    assert r.prompt == "The mother tongue of Danielle Darrieux is"  # trailing space stripped
    assert (r.subject, r.target_new, r.ground_truth, r.case_id) == ("Danielle Darrieux", "English", "French", 7)
    assert r.rephrase_prompts == ("Danielle Darrieux spoke the language",)
    kinds = {(p.kind, p.answer) for p in r.locality}
    assert kinds == {("neighborhood", "French"), ("relation_specificity", "Bordeaux"), ("attribute", "English")}
    assert r.portability[0].answer == "English" and r.portability[0].kind == "portability"
    assert r.generation_prompts == ("Danielle Darrieux's mother tongue is",)


def test_missing_field_names_record_and_field():
    bad = json.loads(json.dumps(CF))
    del bad["requested_rewrite"]["target_new"]
    with pytest.raises(DatasetError, match=r"record 1 \(case_id 7\).*'requested_rewrite.target_new' is missing"):
        load_requests([CF, bad])
    assert len(load_requests([CF, bad], on_error="skip")) == 1


def test_subject_not_in_prompt_is_refused_with_the_record():
    with pytest.raises(DatasetError, match="record 0.*does not occur in prompt"):
        load_requests([{"prompt": "Who is there?", "subject": "Nobody", "target_new": "x"}])


def test_unknown_keys_are_refused():
    with pytest.raises(DatasetError, match="unrecognized record keys"):
        detect_format({"question": "?"})


def test_shared_counterfact_original_sample():
    reqs = load_requests(shared("counterfact-original-schema-sample.json"))
    assert len(reqs) == 5 and all(r.subject in r.prompt for r in reqs)
    assert sum(p.kind == "neighborhood" for p in reqs[0].locality) == 10
    assert reqs[0].generation_prompts


def test_shared_easyedit_counterfact():
    reqs = load_requests(shared("counterfact-val.json"), limit=50, offset=3)
    assert len(reqs) == 50
    r = reqs[0]
    assert r.ground_truth and r.rephrase_prompts and r.locality[0].kind == "neighborhood"


def test_shared_zsre_mend():
    path = shared("zsre-train-1k.json")
    assert detect_format(read_records(path)[0]) == "zsre-mend"
    r = load_requests(path, limit=3)[0]
    assert r.prompt.endswith("?") and r.locality[0].kind == "nq"
    assert r.locality[0].prompt.startswith("nq question:")
    # 17 records of the real file have a new answer that is the true one (no edit at all),
    # the first is record 101; records 534 and 723 have empty fields: each error names it
    with pytest.raises(DatasetError, match=r"record 101 \(zsre-mend\): .*target_new 'Carabidae' "
                                           r"is the same as ground_truth"):
        load_requests(path)
    with pytest.raises(DatasetError, match=r"record 534 \(zsre-mend\): field 'alt'"):
        load_requests(path, offset=530)
    assert len(load_requests(path, on_error="skip")) == 981


def test_shared_knowedit_shapes():
    path = shared("knowedit-format-sample.json")
    records = read_records(path)
    shapes = [detect_format(r) for r in records]
    assert shapes == ["knowedit", "knowedit", "knowedit-wikibio", "knowedit", "knowedit-sanitation"]
    with pytest.raises(DatasetError, match="WikiBio"):
        load_requests(path)
    with pytest.raises(DatasetError, match="Sanitation"):
        load_requests([records[4]])
    reqs = load_requests(path, on_error="skip")
    assert [r.case_id for r in reqs] == ["WikiData_recent", "Wiki counterfact", "ZsRE"]
    recent, cf, zsre = reqs
    assert {p.kind for p in recent.portability} == {"logical_generalization", "reasoning", "subject_aliasing"}
    assert recent.ground_truth is None and cf.ground_truth == "mayor of Vienna"
    assert {p.kind for p in cf.locality} == {"relation_specificity", "forgetfulness"}
    assert zsre.ground_truth == "Aspidoceratidae" and zsre.rephrase_prompts


def test_jsonl_and_pkg_paths(tmp_path):
    path = tmp_path / "cf.jsonl"
    path.write_text(json.dumps(CF) + "\n" + json.dumps(CF) + "\n")
    assert len(load_requests(path)) == 2
    with pytest.raises(DatasetError, match="not installed"):
        load_requests("pkg:no_such_package_xyz/data.json")
