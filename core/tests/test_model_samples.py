"""The model-samples corpus: batched, seeded sampling from the model, cached on disk."""

from __future__ import annotations

import json

import pytest
import torch

import editmethods.toolkit.model_samples as ms
from editmethods.architectures import BUILTIN
from editmethods.testing import tiny_model, tiny_tokenizer
from editmethods.toolkit.model_samples import SamplingSettings, generate_token_ids, model_samples
from editmethods.toolkit.stats import StatisticsError, resolve_corpus, second_moment

SMALL = SamplingSettings(tokens=6, batch_size=4)


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_left_padded_batch_matches_unpadded_generation(model_type):
    """Greedy rows of different start lengths, generated together (left-padded, positions
    counted per row, KV cache), equal each row generated alone by transformers."""
    model, tok = tiny_model(model_type).eval(), tiny_tokenizer()
    starts = [[1], [1, 40, 41, 42], [1, 50, 60]]
    banned = ms._banned_ids(model, tok)
    got = generate_token_ids(model, starts, 7, generator=torch.Generator().manual_seed(0),
                             top_k=1, banned=banned, pad_id=0)
    for start, row in zip(starts, got):
        ids = torch.tensor([start])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=7, min_new_tokens=7, suppress_tokens=banned,
                             pad_token_id=0)
        assert row == ref[0, len(start):].tolist()
    assert all(len(r) == 7 and not set(r) & set(banned) for r in got)


def test_seeded_without_global_rng_and_extends_its_cache(tmp_path, monkeypatch):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    state = torch.random.get_rng_state()
    first = model_samples(model, tok, 5, SMALL, cache_folder=tmp_path, progress=False).texts(5)
    assert torch.equal(state, torch.random.get_rng_state())  # no global random state touched
    assert len(first) == 5
    files = list((tmp_path / "samples").glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 8  # two whole batches

    calls = []
    real = ms.sample_batch
    monkeypatch.setattr(ms, "sample_batch", lambda *a: calls.append(a[-1]) or real(*a))
    again = model_samples(model, tok, 3, SMALL, cache_folder=tmp_path, progress=False).texts(3)
    assert again == first[:3] and calls == []  # read back, never regenerated
    more = model_samples(model, tok, 10, SMALL, cache_folder=tmp_path, progress=False).texts(10)
    assert more[:5] == first and calls == [2]  # only the missing batch
    # the same texts without the cache: samples do not depend on how many are asked for
    fresh = model_samples(model, tok, 10, SMALL, cache=False, progress=False).texts(10)
    assert fresh == more


def test_torn_cache_is_read_up_to_the_tear_and_completed(tmp_path, monkeypatch):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    texts = model_samples(model, tok, 8, SMALL, cache_folder=tmp_path, progress=False).texts(8)
    path = next((tmp_path / "samples").glob("*.jsonl"))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:6]) + '{"i": 6, "te')  # a crash in the middle of a write
    calls = []
    real = ms.sample_batch
    monkeypatch.setattr(ms, "sample_batch", lambda *a: calls.append(a[-1]) or real(*a))
    again = model_samples(model, tok, 8, SMALL, cache_folder=tmp_path, progress=False).texts(8)
    assert again == texts and calls == [1]  # only the torn batch again
    assert model_samples(model, tok, 8, SMALL, cache_folder=tmp_path,
                         progress=False).texts(8) == texts and calls == [1]  # now complete
    rows = [json.loads(line) for line in path.read_text().splitlines()[:6]]
    assert [r["i"] for r in rows] == [0, 1, 2, 3, 4, 5]


def test_key_follows_weights_tokenizer_and_settings(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    ident = model_samples(model, tok, 4, SMALL, cache=False).identity
    assert model_samples(model, tok, 9, SMALL, cache=False).identity == ident  # not the count
    assert model_samples(model, tok, 4, SamplingSettings(tokens=7, batch_size=4),
                         cache=False).identity != ident
    with torch.no_grad():  # the last layer: downstream of every statistic, not of the samples
        model.get_parameter("transformer.h.1.mlp.c_proj.weight").add_(0.1)
    assert model_samples(model, tok, 4, SMALL, cache=False).identity != ident


def test_spec_options_and_errors():
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    corpus = resolve_corpus("model-samples:tokens=5,top_k=0,temperature=0.7,openings=The|A",
                            3, model=model, tokenizer=tok, cache=False, progress=False)
    assert "5 tokens" in corpus.description and "top-k off" in corpus.description
    assert len(corpus.texts(3)) == 3
    with pytest.raises(StatisticsError, match="unknown option.*tokens, top_k"):
        resolve_corpus("model-samples:tokenz=5", 3, model=model, tokenizer=tok)
    with pytest.raises(StatisticsError, match="bad option value"):
        resolve_corpus("model-samples:tokens=many", 3, model=model, tokenizer=tok)
    with pytest.raises(StatisticsError, match="key=value"):
        resolve_corpus("model-samples:tokens", 3, model=model, tokenizer=tok)
    with pytest.raises(StatisticsError, match="sampled from the model"):
        resolve_corpus("model-samples", 3)
    with pytest.raises(StatisticsError, match="encoder-decoder"):
        resolve_corpus("model-samples", 3, model=tiny_model("t5"), tokenizer=tok)


def test_progress_bar(tmp_path, capsys):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    model_samples(model, tok, 4, SMALL, cache=False, progress=True).texts(4)
    assert "model-samples" in capsys.readouterr().err


def test_statistics_of_an_edited_model_sample_the_unedited_one(tmp_path):
    """With the originals of live edits given, the samples, and so the key, are those of
    the unedited model, even for an edit downstream of the module."""
    model, tok = tiny_model("llama"), tiny_tokenizer()
    module = BUILTIN["llama"].path("mlp_out", 0)
    spec = "model-samples:tokens=6,batch_size=4"
    base = second_moment(model, tok, module, spec, n_samples=4, cache_folder=tmp_path,
                         progress=False)
    name = "model.layers.1.mlp.down_proj.weight"
    original = model.get_parameter(name).detach().clone()
    with torch.no_grad():
        model.get_parameter(name).add_(0.5)
    edited = model.get_parameter(name).detach().clone()
    changed = second_moment(model, tok, module, spec, n_samples=4, cache_folder=tmp_path,
                            progress=False)
    assert changed.key != base.key  # other samples
    same = second_moment(model, tok, module, spec, n_samples=4, cache_folder=tmp_path,
                         original_weights={name: original}, progress=False)
    assert same.key == base.key and same.from_cache
    assert torch.equal(model.get_parameter(name), edited)  # copied back

