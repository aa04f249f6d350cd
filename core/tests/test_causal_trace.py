"""Causal tracing: shapes, exactness without noise, batching, the heatmap, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from editmethods import EditRequest
from editmethods.architectures import BUILTIN
from editmethods.errors import ArchitectureError, RequestError
from editmethods.testing import tiny_model, tiny_tokenizer
from editmethods.toolkit.causal_trace import (
    KINDS,
    causal_trace,
    default_window,
    embedding_noise_scale,
    plot_traces,
    strongest_layer,
    trace_all,
)

PROMPT, SUBJECT = "The capital of France is", "France"


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2"), tiny_tokenizer()


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_ranges(model_type, kind):
    model, tok = tiny_model(model_type), tiny_tokenizer()
    r = causal_trace(model, tok, PROMPT, SUBJECT, kind=kind, samples=3, progress=False)
    n_tokens = len(tok(PROMPT).input_ids)
    assert r.scores.shape == (n_tokens, 2) and len(r.tokens) == n_tokens
    assert ((r.scores >= 0) & (r.scores <= 1)).all()
    first, last = r.subject_range
    assert "".join(r.tokens[first : last + 1]).strip() == SUBJECT
    assert r.answer_id == int(model(input_ids=torch.tensor([tok(PROMPT).input_ids])).logits[0, -1].argmax())
    assert 0 <= r.strongest_layer() < 2
    assert r.low_score < r.high_score  # the noise destroys (some of) the answer
    # restoring every layer's residual stream at the last token gives back the clean run
    if kind == "hidden":
        torch.testing.assert_close(r.scores[-1, -1].item(), r.high_score, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_without_noise_every_restored_run_is_the_clean_run(gpt2, kind):
    model, tok = gpt2
    r = causal_trace(model, tok, PROMPT, SUBJECT, kind=kind, noise=0.0, samples=2, progress=False)
    torch.testing.assert_close(r.scores, torch.full_like(r.scores, r.high_score), rtol=1e-5, atol=1e-7)
    assert r.low_score == pytest.approx(r.high_score, rel=1e-5)


def test_batching_does_not_change_scores(gpt2):
    model, tok = gpt2
    big = causal_trace(model, tok, PROMPT, SUBJECT, kind="mlp", samples=4, progress=False)
    small = causal_trace(model, tok, PROMPT, SUBJECT, kind="mlp", samples=4, batch_size=4,
                         progress=False)
    torch.testing.assert_close(big.scores, small.scores, rtol=1e-5, atol=1e-7)


def test_noise_scale_is_three_sigma_and_seeded(gpt2):
    model, tok = gpt2
    emb = model.transformer.wte(torch.tensor(tok("France", add_special_tokens=False).input_ids))
    assert embedding_noise_scale(model, tok, ["France"]) == pytest.approx(3 * float(emb.std()))
    state = torch.random.get_rng_state()
    a = causal_trace(model, tok, PROMPT, SUBJECT, samples=2, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())
    b = causal_trace(model, tok, PROMPT, SUBJECT, samples=2, progress=False)
    assert torch.equal(a.scores, b.scores)


def test_window_centres_and_clamps():
    assert default_window(48) == 9 and default_window(6) == 1 and default_window(200) == 10
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    # a window wider than the model restores all MLPs at once: every layer scores the same
    r = causal_trace(model, tok, PROMPT, SUBJECT, kind="mlp", window=10, samples=2, progress=False)
    torch.testing.assert_close(r.scores[:, 0], r.scores[:, 1])


def test_given_answer_and_model_untouched(gpt2):
    model, tok = gpt2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = causal_trace(model, tok, PROMPT, SUBJECT, answer="Paris", samples=2, progress=False)
    assert r.answer_id == tok(PROMPT + " Paris").input_ids[len(tok(PROMPT).input_ids)]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not model.training


def test_png_written(gpt2, tmp_path):
    model, tok = gpt2
    results = trace_all(model, tok, PROMPT, SUBJECT, samples=2, progress=False)
    assert set(results) == set(KINDS)
    assert len({r.noise for r in results.values()}) == 1
    path = plot_traces(list(results.values()), tmp_path / "trace.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    single = results["mlp"].plot(tmp_path / "mlp.png")
    assert single.stat().st_size > 1000
    json.dumps(results["hidden"].to_dict())


def test_strongest_layer_over_requests(gpt2):
    model, tok = gpt2
    reqs = [EditRequest(prompt=PROMPT, subject=SUBJECT, target_new="Rome"),
            EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")]
    layer = strongest_layer(model, tok, BUILTIN["gpt2"], reqs, kind="mlp", samples=2, progress=False)
    assert layer in (0, 1)
    with pytest.raises(RequestError):
        strongest_layer(model, tok, BUILTIN["gpt2"], [])


def test_bad_input_refused(gpt2):
    model, tok = gpt2
    with pytest.raises(RequestError, match="does not occur"):
        causal_trace(model, tok, PROMPT, "Spain", progress=False)
    with pytest.raises(ValueError, match="kind"):
        causal_trace(model, tok, PROMPT, SUBJECT, kind="mlps", progress=False)
    with pytest.raises(ArchitectureError, match="encoder-decoder"):
        causal_trace(tiny_model("t5"), tok, PROMPT, SUBJECT, progress=False)


def test_cli_trace_writes_png_and_json(tmp_path):
    from editmethods.cli import build_cli
    from editmethods.testing import make_plugins

    model_dir = tmp_path / "tiny"
    tiny_model("gpt2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    out, js = tmp_path / "t.png", tmp_path / "t.json"
    result = CliRunner().invoke(build_cli(make_plugins()), [
        "trace", "--model", str(model_dir), "--prompt", PROMPT, "--subject", SUBJECT,
        "--kind", "all", "--samples", "2", "--out", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    assert "strongest layer" in result.output and out.exists()
    assert set(json.loads(js.read_text())) == set(KINDS)
    bad = CliRunner().invoke(build_cli(make_plugins()), [
        "trace", "--model", str(model_dir), "--prompt", PROMPT, "--subject", "Spain"])
    assert bad.exit_code != 0 and "does not occur" in bad.output


def test_subject_range_starts_at_the_subjects_first_token():
    # "The capital of " tokenizes with a separate space token; in the prompt the space is
    # part of the subject's first token: the range must start there.
    from editmethods.tokens import subject_token_range

    tok = tiny_tokenizer()
    first, last = subject_token_range(tok, PROMPT, SUBJECT)
    ids = tok(PROMPT).input_ids
    assert tok.decode(ids[first : last + 1]) == " " + SUBJECT
    assert tok.decode(ids[:first]) == "The capital of"


def _one_state_at_a_time(model, tok, prompt, subject, kind, samples, noise):
    """The paper's procedure written plainly: one forward pass of the whole prompt per
    restored state and noise draw, full logits."""
    from editmethods.architectures import BUILTIN
    from editmethods.tokens import subject_token_range
    from editmethods.toolkit.causal_trace import _ROLE, default_window
    from editmethods.toolkit.tracing import trace

    arch = BUILTIN[model.config.model_type]
    n_layers = arch.n_layers(model)
    window = default_window(n_layers) if kind != "hidden" else 1
    first, last = subject_token_range(tok, prompt, subject)
    ids = torch.tensor([tok(prompt).input_ids])
    names = [arch.path(_ROLE[kind], layer) for layer in range(n_layers)]
    with torch.no_grad(), trace(model, names) as rec:
        answer = int(model(input_ids=ids).logits[0, -1].argmax())
    clean = {n: (rec[n].output[0] if isinstance(rec[n].output, tuple) else rec[n].output)[0]
             for n in names}
    gen = torch.Generator().manual_seed(1)
    draws = torch.randn(samples, last - first + 1, model.config.hidden_size, generator=gen) * noise
    embed = arch.path("embed")
    scores = torch.zeros(ids.shape[1], n_layers)
    for t in range(ids.shape[1]):
        for center in range(n_layers):
            lo, hi = max(0, center - window // 2), min(n_layers, center - (-window // 2))
            restored = {names[layer] for layer in range(lo, hi)}
            total = 0.0
            for s in range(samples):
                def patch(name, h, s=s, t=t, restored=restored):
                    h = h.clone()
                    if name == embed:
                        h[0, first : last + 1] += draws[s]
                    elif name in restored:
                        h[0, t] = clean[name][t]
                    return h

                with torch.no_grad(), trace(model, [embed, *restored], retain_output=False,
                                            edit_output=patch):
                    logits = model(input_ids=ids).logits[0, -1]
                total += float(torch.softmax(logits, -1)[answer])
            scores[t, center] = total / samples
    return scores


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "gptj", "qwen2"])
@pytest.mark.parametrize("kind", KINDS)
def test_batched_trace_equals_one_state_at_a_time(model_type, kind):
    # The batched trace (earlier tokens cached, rows started at their first restored block,
    # baseline scores before the subject) computes what the plain procedure computes.
    model, tok = tiny_model(model_type), tiny_tokenizer()
    prompt, subject = "The capital of France is", "France"
    got = causal_trace(model, tok, prompt, subject, kind=kind, samples=2, noise=0.5,
                       progress=False, batch_size=6)
    want = _one_state_at_a_time(model, tok, prompt, subject, kind, samples=2, noise=0.5)
    torch.testing.assert_close(got.scores, want, rtol=1e-4, atol=1e-6)
