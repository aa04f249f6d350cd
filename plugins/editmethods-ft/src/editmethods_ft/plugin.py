"""The ``ft`` method's hooks."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec
from editmethods_ft.hparams_ft import FTHyperParams
from editmethods_ft.method import compute_ft_update


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name="ft",
        hparams_class=FTHyperParams,
        description="Fine-tuning of chosen weights: FT-M (target tokens, prompt masked) or "
                    "FT-L (L∞-bounded, ROME's baseline)",
        model_types=("*",),
        batch=True,
        writes_weights=True,
    ))


@hookimpl
def compute_update(method, model, tokenizer, requests, hparams, location, architecture):
    return compute_ft_update(model, tokenizer, requests, hparams, location, architecture)
