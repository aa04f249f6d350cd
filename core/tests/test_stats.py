"""The statistics engine: E[k kᵀ] of a module's inputs, its cache key and its errors."""

from __future__ import annotations

import sys
import time
import types
import warnings

import pytest
import torch

from editmethods.architectures import BUILTIN
from editmethods.errors import EditmethodsError
from editmethods.testing import CORPUS, tiny_model, tiny_tokenizer
from editmethods.toolkit.stats import (
    StatisticsError,
    register_corpus,
    resolve_corpus,
    second_moment,
    upstream_parameters,
)
from editmethods.toolkit.tracing import trace

TEXTS = sorted(set(CORPUS))


def _brute_force(model, tok, module, texts):
    rows = []
    for t in texts:
        ids = torch.tensor([tok(t).input_ids])
        with torch.no_grad(), trace(model, [module], retain_input=True) as rec:
            model(input_ids=ids)
        rows.append(rec[module].input[0].double())
    k = torch.cat(rows)
    return k.T @ k / k.shape[0]


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_matches_a_direct_computation(tmp_path, model_type):
    model, tok = tiny_model(model_type), tiny_tokenizer()
    module = BUILTIN[model_type].path("mlp_out", 1)
    stats = second_moment(model, tok, module, TEXTS, n_samples=100, cache_folder=tmp_path,
                          token_budget=40, progress=False)
    expected = _brute_force(model, tok, module, TEXTS)
    assert stats.matrix.dtype == torch.float64
    assert stats.n_samples == len(TEXTS)
    torch.testing.assert_close(stats.matrix, expected, rtol=1e-4, atol=1e-6)


def test_cache_hit_and_key_changes_with_weights(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    module = "transformer.h.1.mlp.c_proj"
    first = second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                          progress=False)
    assert not first.from_cache
    start = time.perf_counter()
    again = second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                          progress=False)
    assert again.from_cache and again.key == first.key
    assert time.perf_counter() - start < 1.0
    assert torch.equal(again.matrix, first.matrix)
    # the module's own weight is not upstream of its input: editing it keeps the cache
    with torch.no_grad():
        model.get_parameter(module + ".weight").add_(1.0)
    assert second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                         progress=False).key == first.key
    # a weight upstream of it changes the key, and the statistics
    with torch.no_grad():
        model.get_parameter("transformer.h.0.mlp.c_fc.weight").mul_(1.5)
    changed = second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                            progress=False)
    assert changed.key != first.key and not changed.from_cache
    assert not torch.allclose(changed.matrix, first.matrix)
    # so do the sample count and the corpus
    fewer = second_moment(model, tok, module, TEXTS, n_samples=5, cache_folder=tmp_path,
                          progress=False)
    assert fewer.key != changed.key and fewer.n_samples == 5
    other = second_moment(model, tok, module, TEXTS[::-1][:5], n_samples=5,
                          cache_folder=tmp_path, progress=False)
    assert other.key != fewer.key


def test_original_weights_describe_the_unedited_model(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    module = "transformer.h.1.mlp.c_proj"
    base = second_moment(model, tok, module, TEXTS, n_samples=20, cache_folder=tmp_path,
                         progress=False)
    name = "transformer.h.0.mlp.c_proj.weight"
    original = model.get_parameter(name).detach().clone()
    with torch.no_grad():
        model.get_parameter(name).add_(0.3)
    edited_state = model.get_parameter(name).detach().clone()
    via_originals = second_moment(model, tok, module, TEXTS, n_samples=20, cache=False,
                                  original_weights={name: original}, progress=False)
    assert via_originals.key == base.key
    torch.testing.assert_close(via_originals.matrix, base.matrix)
    assert torch.equal(model.get_parameter(name), edited_state)  # swapped back


def test_upstream_parameters_stop_at_the_module():
    model = tiny_model("llama")
    names = upstream_parameters(model, "model.layers.1.mlp.down_proj")
    assert "model.embed_tokens.weight" in names
    assert "model.layers.1.post_attention_layernorm.weight" in names  # runs before the MLP
    assert "model.layers.1.mlp.up_proj.weight" in names
    assert "model.layers.1.mlp.down_proj.weight" not in names
    assert "lm_head.weight" not in names


def test_singular_matrix_says_how_many_samples(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    stats = second_moment(model, tok, "transformer.h.0.mlp.c_proj", TEXTS, n_samples=2,
                          cache_folder=tmp_path, progress=False)
    with pytest.raises(StatisticsError, match=r"singular.*at least \d+ samples"):
        stats.solve(torch.ones(stats.dim))
    # a ridge makes it solvable
    assert torch.isfinite(stats.solve(torch.ones(stats.dim), ridge=0.1)).all()


def test_corpus_sources(tmp_path):
    (tmp_path / "a.txt").write_text("one line\n\nanother line\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_text("third line\n")
    assert resolve_corpus(tmp_path / "a.txt").texts(10) == ["one line", "another line"]
    folder = resolve_corpus(tmp_path)
    assert folder.texts(10) == ["one line", "another line", "third line"]
    ident = folder.identity
    (sub / "b.txt").write_text("changed\n")
    assert resolve_corpus(tmp_path).identity != ident  # mtime/size, not the folder's name
    register_corpus("demo-texts", lambda: ["x y", "z"])
    assert resolve_corpus("demo-texts").texts(5) == ["x y", "z"]

    class FakeDataset:  # duck-typed datasets.Dataset
        column_names = ["text"]
        _fingerprint = "abc"

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"text": f"row {i}"}

    ds = resolve_corpus(FakeDataset())
    assert ds.texts(5) == ["row 0", "row 1"] and "abc" in ds.identity
    with pytest.raises(StatisticsError, match="does not exist"):
        resolve_corpus(tmp_path / "missing" / "x.txt")
    with pytest.raises(StatisticsError, match="strings"):
        resolve_corpus([1, 2])
    # rows of a streamed dataset the caller opened (an IterableDataset yields dicts)
    stream = iter([{"text": "first row", "id": 0}, {"text": "second row", "id": 1}])
    assert resolve_corpus(stream, 5).texts(5) == ["first row", "second row"]


def test_float32_option_and_bad_dtype(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    s = second_moment(model, tok, "transformer.h.0.mlp.c_proj", TEXTS, n_samples=5,
                      dtype="float32", cache=False, progress=False)
    assert s.matrix.dtype == torch.float32
    with pytest.raises(StatisticsError, match="dtype"):
        second_moment(model, tok, "transformer.h.0.mlp.c_proj", TEXTS, dtype="float16",
                      cache=False, progress=False)


def test_facts_corpus_from_an_edit_dataset():
    from pathlib import Path

    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "counterfact-original-schema-sample.json"
    if not data.is_file():
        pytest.skip(f"shared sample data not found at {data}")
    corpus = resolve_corpus(f"facts:{data}")
    texts = corpus.texts(50)
    assert texts and all(t.endswith(".") for t in texts)
    assert corpus.identity.startswith("facts:")
    with pytest.raises(StatisticsError, match="no data file"):
        resolve_corpus("facts:/nonexistent/x.json")


# -- corpora: bad input, the sample cap, Hugging Face streaming ------------------------------
def test_unknown_corpus_name_lists_the_known_ones():
    register_corpus("demo-known", lambda: ["a b"])
    with pytest.raises(StatisticsError) as info:
        resolve_corpus("wikipedai")
    text = str(info.value)
    for name in ("model-samples", "wikipedia", "wikitext", "facts:", "hf:", "demo-known"):
        assert name in text
    assert "path of a text file" in text and "register_corpus" in text
    assert isinstance(info.value, EditmethodsError)


def test_blank_corpus_file_is_named(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\t\n")
    with pytest.raises(StatisticsError, match=f"{blank}.*every line is blank"):
        resolve_corpus(blank)
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("\n\n")
    with pytest.raises(StatisticsError, match=f"folder {folder}.*blank"):
        resolve_corpus(folder)
    with pytest.raises(StatisticsError, match="precomputed statistics"):
        resolve_corpus("npz:/x")


def test_samples_beyond_the_corpus_are_capped_with_a_warning(tmp_path):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    module = "transformer.h.0.mlp.c_proj"
    with pytest.warns(UserWarning, match=f"has {len(TEXTS)} texts, fewer than the 50 asked"):
        first = second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                              progress=False)
    assert first.n_samples == len(TEXTS)
    with pytest.warns(UserWarning, match="fewer than the 50"):  # and again from the cache
        assert second_moment(model, tok, module, TEXTS, n_samples=50, cache_folder=tmp_path,
                             progress=False).from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when the corpus is large enough
        second_moment(model, tok, module, TEXTS, n_samples=len(TEXTS), cache=False,
                      progress=False)


class _FakeDatasets(types.ModuleType):
    """Stands for the `datasets` package: records load_dataset's arguments and how many rows
    were read from the (endless) stream."""

    def __init__(self, fail: Exception | None = None):
        super().__init__("datasets")
        self.calls: list[tuple[tuple, dict]] = []
        self.read = 0
        self.fail = fail

    def load_dataset(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.fail is not None:
            raise self.fail

        def rows():
            i = 0
            while True:
                self.read += 1
                yield {"id": str(i), "text": f"Article {i} is about Paris" if i % 3 else ""}
                i += 1

        return rows()


def test_wikipedia_is_streamed_and_only_the_first_texts_read(tmp_path, monkeypatch):
    fake = _FakeDatasets()
    monkeypatch.setitem(sys.modules, "datasets", fake)
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    module = "transformer.h.0.mlp.c_proj"
    stats = second_moment(model, tok, module, "wikipedia", n_samples=4, cache_folder=tmp_path,
                          progress=False)
    assert fake.calls == [(("wikimedia/wikipedia", "20231101.en"),
                           {"split": "train", "streaming": True})]
    assert stats.n_samples == 4 and fake.read == 6  # 4 texts; the blank rows are skipped
    # cached statistics need neither the package nor the network
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert second_moment(model, tok, module, "wikipedia", n_samples=4, cache_folder=tmp_path,
                         progress=False).from_cache
    monkeypatch.setitem(sys.modules, "datasets", fake)
    second_moment(model, tok, module, "wikitext", n_samples=2, cache=False, progress=False)
    second_moment(model, tok, module, "hf:my/corpus:en", n_samples=2, cache=False, progress=False)
    assert [c[0] for c in fake.calls[1:]] == [("wikitext", "wikitext-103-raw-v1"), ("my/corpus", "en")]
    assert all(c[1]["streaming"] is True for c in fake.calls)


def test_streaming_errors_say_what_to_do(tmp_path, monkeypatch):
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    module = "transformer.h.0.mlp.c_proj"
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(StatisticsError, match="`datasets` package is not installed.*model-samples"):
        second_moment(model, tok, module, "wikitext", n_samples=2, cache=False, progress=False)
    monkeypatch.setitem(sys.modules, "datasets", _FakeDatasets(ConnectionError("no network")))
    with pytest.raises(StatisticsError, match="no network.*offline.*model-samples"):
        second_moment(model, tok, module, "wikipedia", n_samples=2, cache=False, progress=False)
