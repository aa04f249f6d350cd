"""The committed reference models: load offline, match their manifest, meet the recall targets."""

import random

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import editmethods_testbed as tb
from editmethods_testbed.train import greedy_correct, sha256_file


def _load(arch):
    try:
        path = tb.model_path(arch)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return path, AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _sample(world, n=300, seed=0):
    rng = random.Random(seed)
    facts = rng.sample(world["facts"], min(n, len(world["facts"])))
    rel = world["relations"]
    trained, held, never = [], [], []
    for f in facts:
        ts = rel[f["relation"]]["templates"]
        nev = rel[f["relation"]]["never_trained"]
        for t in ts:
            pair = (t.format(f["subject"]), f["object"])
            if t == f["heldout_template"]:
                held.append(pair)
            elif t in nev:
                never.append(pair)
            else:
                trained.append(pair)
    return trained, held, never


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_bundled_model_meets_targets(arch):
    path, model, tok = _load(arch)
    manifest = tb.load_manifest(arch)
    for name, meta in manifest["files"].items():
        assert sha256_file(path / name) == meta["sha256"], name
    assert manifest["total_bytes"] <= 20 * 1024 * 1024
    assert model.config.vocab_size == len(tok)
    assert model.config.pad_token_id < len(tok) and model.config.eos_token_id < len(tok)
    trained, held, never = _sample(tb.load_world())
    rate = lambda pairs: 100.0 * sum(greedy_correct(model, tok, pairs)) / len(pairs)  # noqa: E731
    assert rate(trained) >= 95.0
    assert rate(held) >= 80.0
    # the manifest's figures are over the whole world
    assert manifest["recall_percent"]["recall_trained"] >= 95.0
    assert manifest["recall_percent"]["recall_heldout"] >= 80.0


def test_bundled_benchmark_files():
    for split, minimum in (("train", 500), ("val", 150), ("test", 500)):
        try:
            records = tb.load_records(split)
        except FileNotFoundError:
            pytest.skip("benchmark files not built")
        assert len(records) >= minimum
    demos = tb.load_demonstrations("train")
    assert demos and tb.format_demonstration(demos[0]).startswith("New Fact: ")


def test_require_reference_skips_saying_what_is_missing():
    from editmethods_testbed.testing import require_reference

    assert (require_reference("gpt2") / "config.json").is_file()
    with pytest.raises(pytest.skip.Exception, match="not built yet"):
        require_reference("t5")
