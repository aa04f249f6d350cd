"""The ``rome`` method's hooks."""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec
from editmethods_rome.hparams_rome import ROMEHyperParams
from editmethods_rome.method import compute_rome_update, locate_rome

#: Architectures with a linear MLP output projection that ROME can rewrite.
MODEL_TYPES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2")


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name="rome",
        hparams_class=ROMEHyperParams,
        description="ROME: rank-one update of one MLP output projection, with C⁻¹ "
                    "(Meng et al. 2022; r-ROME's consistent variant by default)",
        model_types=MODEL_TYPES,
        batch=False,
        writes_weights=True,
    ))


@hookimpl
def locate(method, model, tokenizer, requests, hparams, architecture):
    return locate_rome(model, tokenizer, requests, hparams, architecture, method)


@hookimpl
def compute_update(method, model, tokenizer, requests, hparams, location, architecture):
    return compute_rome_update(model, tokenizer, requests, hparams, location, architecture, method)
