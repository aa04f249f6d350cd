"""The ``memit`` method's hooks."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec
from editmethods_memit.hparams_memit import MEMITHyperParams
from editmethods_memit.method import compute_memit_update, locate_memit
from editmethods_rome.plugin import MODEL_TYPES


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name="memit",
        hparams_class=MEMITHyperParams,
        description="MEMIT: many facts at once, spread over a range of MLP layers "
                    "(Meng et al. 2023), with the z vectors of a batch optimized together",
        model_types=MODEL_TYPES,
        batch=True,
        writes_weights=True,
    ))


@hookimpl
def locate(method, model, tokenizer, requests, hparams, architecture):
    return locate_memit(model, tokenizer, requests, hparams, architecture, method)


@hookimpl
def compute_update(method, model, tokenizer, requests, hparams, location, architecture):
    return compute_memit_update(model, tokenizer, requests, hparams, location, architecture, method)
