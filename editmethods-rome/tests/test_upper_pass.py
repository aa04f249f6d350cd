"""The value optimization's cached upper pass gives the plain forward pass's result."""

import pytest
import torch

from editmethods.architectures import BUILTIN
from editmethods.testing import tiny_model, tiny_tokenizer
from editmethods.toolkit.tracing import trace
from editmethods.types import EditRequest
from editmethods_rome import upper_pass
from editmethods_rome.keys import pad_rows
from editmethods_rome.values import optimize_values

REQS = [
    EditRequest(prompt="The capital of France is", subject="France", target_new="Rome"),
    EditRequest(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano"),
    EditRequest(prompt="The Eiffel Tower is in", subject="The Eiffel Tower", target_new="Berlin"),
]
PREFIXES = ["", "a b c. ", "d e. "]
KW = dict(steps=12, lr=1.0, weight_decay=0.1, clamp_factor=20.0)


@pytest.mark.parametrize("model_type", ["gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2"])
def test_fast_pass_equals_plain_forward(model_type):
    model, tok = tiny_model(model_type), tiny_tokenizer()
    arch = BUILTIN[model_type]
    module = arch.path("mlp_out", 0)
    # an early stop between the edits' starting losses: some edits leave the batch at once,
    # so the fast pass runs on a shrinking selection of rows
    start = optimize_values(model, tok, REQS, PREFIXES, module=module, steps=1, fast=False)
    stop = sorted(start.nll)[1] + 1e-3
    plain = optimize_values(model, tok, REQS, PREFIXES, module=module, architecture=arch,
                            fast=False, early_stop=stop, **KW)
    fast = optimize_values(model, tok, REQS, PREFIXES, module=module, architecture=arch,
                           early_stop=stop, **KW)
    assert upper_pass._verdicts[model][1] is True  # the fast pass was used
    torch.testing.assert_close(fast.delta, plain.delta, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.init, plain.init, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.mean_init, plain.mean_init, rtol=1e-5, atol=1e-6)
    assert fast.steps == plain.steps
    # edits stopped at different steps, so the batch shrank on the way
    assert len(set(fast.steps)) > 1


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_last_layer_logits_and_gradients_equal_plain_forward(model_type):
    # δ at the last block: no block runs above it, only the final norm and the head. (The
    # optimization itself is no test here: on a random tiny model the gradient there is ~1e-10
    # and Adam turns its rounding noise into steps.)
    model = tiny_model(model_type)
    arch = BUILTIN[model_type]
    module = arch.path("mlp_out", 1)
    rows, pos = [[5, 6, 7, 8, 9, 10], [4, 5, 6]], [3, 1]
    up = upper_pass.UpperPass.build(model, arch, module, rows, pos, 0)
    sites = [(torch.tensor([0, 0, 1]), torch.tensor([3, 5, 2]))]
    delta = torch.randn(2, model.config.hidden_size, requires_grad=True)
    fast = up.logits(torch.arange(2), delta, sites)[0]
    ids, mask = pad_rows(rows, 0, torch.device("cpu"))

    def add(name, out):
        return out.index_put((torch.arange(2), torch.tensor(pos)), delta, accumulate=True)

    with trace(model, [module], edit_output=add, retain_output=False, detach=False):
        logits = model(input_ids=ids, attention_mask=mask).logits
    plain = logits[sites[0][0], sites[0][1]]
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    g_fast, = torch.autograd.grad(fast.logsumexp(-1).sum(), delta)
    g_plain, = torch.autograd.grad(plain.logsumexp(-1).sum(), delta)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=1e-6)


def test_model_that_does_not_fit_falls_back_to_the_plain_pass():
    # A model that rescales its logits after the head (as soft-capping models do): the upper
    # pass cannot reproduce them, the check notices and the plain pass runs.
    model, tok = tiny_model("llama"), tiny_tokenizer()

    def rescale(module, args, output):
        output.logits = output.logits * 2.0
        return output

    arch = BUILTIN["llama"]
    module = arch.path("mlp_out", 0)
    optimize_values(model, tok, REQS[:1], PREFIXES, module=module, architecture=arch, **KW)
    assert upper_pass._verdicts[model][1] is True
    # the hook comes after a first verdict: it is checked again, not trusted
    model.register_forward_hook(rescale)
    plain = optimize_values(model, tok, REQS[:1], PREFIXES, module=module, fast=False, **KW)
    got = optimize_values(model, tok, REQS[:1], PREFIXES, module=module, architecture=arch, **KW)
    assert upper_pass._verdicts[model][1] is False
    torch.testing.assert_close(got.delta, plain.delta)


def test_block_of_finds_the_block_holding_a_module():
    model = tiny_model("gpt2")
    arch = BUILTIN["gpt2"]
    assert upper_pass.block_of(arch, model, "transformer.h.1.mlp.c_proj") == 1
    assert upper_pass.block_of(arch, model, "transformer.h.0") == 0
    assert upper_pass.block_of(arch, model, "transformer.wte") is None
