"""The ``ike`` method's hooks."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec
from editmethods_ike.hparams_ike import IKEHyperParams
from editmethods_ike.method import METHOD, apply_ike, compute_ike_update, rollback_ike

#: Decoder-only architectures the in-context router is checked on.
MODEL_TYPES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name=METHOD,
        hparams_class=IKEHyperParams,
        description="In-context knowledge editing: retrieved demonstrations and the new fact "
                    "in the prompt; weights frozen",
        model_types=MODEL_TYPES,
        batch=True,
        writes_weights=False,
    ))


@hookimpl
def compute_update(method, model, tokenizer, requests, hparams):
    return compute_ike_update(model, tokenizer, requests, hparams)


@hookimpl
def apply(method, model, tokenizer, update, handle):
    return apply_ike(model, tokenizer, update, handle)


@hookimpl
def rollback(method, model, handle):
    return rollback_ike(model, handle)


@hookimpl
def commit(method, model, handle):
    # A prompt cannot be folded into weights: the context simply stays for good.
    return True
