"""The edited model answers through the context for every caller: batches with any padding,
generate(), several edits, exact rollback, and the context-length limit."""

from pathlib import Path

import pytest
import torch

import editmethods_ike.plugin
from editmethods import Editor, EditRequest
from editmethods.errors import EditError
from editmethods.plugins import Plugins
from editmethods.scoring import greedy_continue
from editmethods.testing import tiny_model, tiny_tokenizer

DATA = Path(__file__).parent / "data" / "counterfact-mini.json"
HP = {"k": 0, "demonstrations": str(DATA)}
FRANCE = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
MILES = EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano")


def make_editor(model_type="gpt2"):
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_ike.plugin, name="ike")
    return Editor(tiny_model(model_type), tiny_tokenizer(), plugins=plugins)


def batch(tok, texts, left=False):
    rows = [tok(t).input_ids for t in texts]
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    return ids, mask, rows


@torch.no_grad()
def single(model, tok, text):
    return model(input_ids=torch.tensor([tok(text).input_ids])).logits[0]


@pytest.mark.parametrize("left", [False, True])
def test_batched_rows_see_the_edit_at_their_own_positions(left):
    editor = make_editor()
    model, tok = editor.model, editor.tokenizer
    texts = ["The capital of France is Rome", "Miles Davis plays the"]
    ids, mask, rows = batch(tok, texts, left=left)
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits.clone()
    editor.edit(FRANCE, "ike", HP)
    with torch.no_grad():
        after = model(input_ids=ids, attention_mask=mask).logits
    width = ids.shape[1]
    n0 = len(rows[0])
    real0 = slice(width - n0, width) if left else slice(0, n0)
    # the routed row equals the routed row run alone
    torch.testing.assert_close(after[0, real0], single(model, tok, texts[0]), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(after[0, real0], before[0, real0])
    # the other row is exactly the unedited model's
    assert torch.equal(after[1], before[1])


def test_generate_sees_the_edit():
    editor = make_editor()
    editor.edit(FRANCE, "ike", HP)
    model, tok = editor.model, editor.tokenizer
    ids = torch.tensor([tok(FRANCE.prompt).input_ids])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                             do_sample=False, pad_token_id=tok.pad_token_id)
    generated = out[0, ids.shape[1]:].tolist()
    expected = greedy_continue(model, tok, [FRANCE.prompt], max_new_tokens=4)[0]
    assert tok.decode(generated).startswith(expected) or expected.startswith(tok.decode(generated))


def test_rollback_removes_exactly_one_edit_and_the_last_removes_the_hooks():
    editor = make_editor()
    model, tok = editor.model, editor.tokenizer
    prompts = [FRANCE.prompt, MILES.prompt]
    base = [single(model, tok, p) for p in prompts]
    h1 = editor.edit(FRANCE, "ike", HP)
    h2 = editor.edit(MILES, "ike", HP)
    edited = [single(model, tok, p) for p in prompts]
    editor.rollback(h1)
    assert torch.equal(single(model, tok, prompts[0]), base[0])
    assert torch.equal(single(model, tok, prompts[1]), edited[1])
    assert model._forward_hooks, "the remaining edit lost its hook"
    editor.rollback(h2)
    assert not model._forward_hooks and not model._forward_pre_hooks
    for p, b in zip(prompts, base):
        assert torch.equal(single(model, tok, p), b)


def test_same_subject_edits_answer_through_the_nearest():
    editor = make_editor()
    born = EditRequest(prompt="Danielle Darrieux was born in", subject="Danielle Darrieux",
                       target_new="Rome")
    speaks = EditRequest(prompt="The mother tongue of Danielle Darrieux is", subject="Danielle Darrieux",
                         target_new="Italian")
    editor.edit(born, "ike", HP)
    editor.edit(speaks, "ike", HP)
    from editmethods_ike.method import InContextMemory

    memory = InContextMemory.find(editor.model)
    routes = memory.route(["Danielle Darrieux was born in Rome", "Danielle Darrieux speaks Italian"])
    assert "was born in Rome\nPrompt:" in routes[0].contexts[-1]
    assert "mother tongue" in routes[1].contexts[-1]


def test_too_long_queries_drop_demonstrations_then_refuse():
    editor = make_editor()  # 64 positions
    editor.edit(FRANCE, "ike", {"k": 2, "demonstrations": str(DATA)})
    with pytest.warns(UserWarning, match="shorter context"):
        single(editor.model, editor.tokenizer, FRANCE.prompt)
    tok = editor.tokenizer
    long_query = "The capital of France is"
    while len(tok(long_query + " Rome").input_ids) <= 60:  # fits alone, not with the new fact
        long_query += " Rome"
    with pytest.raises(EditError, match="never cut"):
        single(editor.model, editor.tokenizer, long_query)


def test_encoder_decoder_models_are_refused():
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_ike.plugin, name="ike")
    editor = Editor(tiny_model("t5"), tiny_tokenizer(), plugins=plugins)
    with pytest.raises(EditError, match="does not support model type 't5'"):
        editor.edit(FRANCE, "ike", HP)
