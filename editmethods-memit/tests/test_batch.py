"""Batched z optimization is the per-edit computation; batches edit every fact at once."""

import torch

import editmethods_memit.plugin
from editmethods import Editor, EditRequest
from editmethods.plugins import Plugins
from editmethods.scoring import score_targets
from editmethods.testing import CORPUS, assert_same_state, state_copy, tiny_model, tiny_tokenizer
from editmethods.toolkit.stats import register_corpus
from editmethods_rome.values import optimize_values

register_corpus("batch-corpus", lambda: sorted(set(CORPUS)))
REQS = [
    EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
    EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano"),
    EditRequest(prompt="The Eiffel Tower is in", subject="The Eiffel Tower", target_new="Berlin"),
]
HP = {"layers": [0], "v_lr": 0.3, "v_num_grad_steps": 30, "clamp_norm_factor": 20.0,
      "v_weight_decay": 0.0, "mom2_ridge": 0.1, "mom2_update_weight_per_dim": 0.01,
      "mom2_dataset": "batch-corpus", "mom2_n_samples": 100,
      "context_template_length_params": [[5, 2]]}


def test_batched_values_equal_one_at_a_time():
    model, tok = tiny_model("gpt2"), tiny_tokenizer()
    prefixes = ["", "a b c. "]
    kw = dict(module="transformer.h.0", steps=8, lr=0.3, weight_decay=0.1, clamp_factor=5.0)
    together = optimize_values(model, tok, REQS, prefixes, **kw)
    for i, r in enumerate(REQS):
        alone = optimize_values(model, tok, [r], prefixes, **kw)
        torch.testing.assert_close(together.delta[i], alone.delta[0], rtol=1e-4, atol=1e-5)
        assert together.steps[i] == alone.steps[0]


def test_batch_edit_moves_every_target_and_rolls_back():
    plugins = Plugins(entry_points=False)
    plugins.register(editmethods_memit.plugin, name="memit")
    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)
    state = state_copy(editor.model)

    def logprobs():
        s = score_targets(editor.model, editor.tokenizer, [r.prompt for r in REQS],
                          [r.target_text for r in REQS])
        return [float(x.sum()) for x in s.logprobs]

    before = logprobs()
    handle = editor.edit(REQS, "memit", HP)
    after = logprobs()
    assert all(a > b for a, b in zip(after, before)), (before, after)
    assert handle.update.meta["n_edits"] == 3
    editor.rollback(handle)
    assert_same_state(editor.model, state)
