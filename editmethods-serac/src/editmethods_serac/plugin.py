"""The ``serac`` method's hooks and its ``editmethods train serac`` command."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec
from editmethods_serac.hparams_serac import SERACHyperParams

METHOD = "serac"
#: Decoder-only architectures the in-context router is checked on.
MODEL_TYPES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name=METHOD,
        hparams_class=SERACHyperParams,
        description="SERAC: edit memory + scope classifier + counterfactual model; base "
                    "weights frozen (Mitchell et al., 2022)",
        model_types=MODEL_TYPES,
        batch=True,
        writes_weights=False,
    ))


@hookimpl
def compute_update(method, model, tokenizer, requests, hparams):
    from editmethods_serac.method import compute_serac_update

    return compute_serac_update(model, tokenizer, requests, hparams)


@hookimpl
def apply(method, model, tokenizer, update, handle):
    from editmethods_serac.method import apply_serac

    return apply_serac(model, tokenizer, update, handle)


@hookimpl
def rollback(method, model, handle):
    from editmethods_serac.method import rollback_serac

    return rollback_serac(model, handle)


@hookimpl
def commit(method, model, handle):
    # A memory entry cannot be folded into the base weights: it simply stays for good.
    return True


@hookimpl
def register_commands(cli):
    from editmethods_serac.commands import register

    register(cli)
