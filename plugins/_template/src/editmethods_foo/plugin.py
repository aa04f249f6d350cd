"""The hooks of ``foo``: the module the entry point names.

Implement only what the method needs; each hook takes any subset of its spec's arguments
(see ``editmethods.hookspecs``). A method that writes weights implements ``register_methods``
and ``compute_update`` (and ``locate`` if it chooses where to edit); the core applies,
rolls back, saves and reloads its deltas. A method that keeps the weights frozen (adapters,
memories) also implements ``apply``, ``rollback`` and ``commit``.
"""

from __future__ import annotations

from editmethods.hookspecs import hookimpl
from editmethods.types import Location, MethodSpec
from editmethods_foo.hparams import FooHyperParams
from editmethods_foo.method import compute_foo_update


@hookimpl
def register_methods(register):
    register(MethodSpec(
        name="foo",  # lowercase, unique among installed methods; the entry point's name
        hparams_class=FooHyperParams,
        description="Normalized gradient steps on one MLP output weight",
        model_types=("*",),  # or e.g. ("gpt2", "llama")
        batch=True,  # one call may take several requests
        writes_weights=True,
    ))


@hookimpl
def locate(model, hparams, architecture):
    # Checked here so that a bad layer is refused before any work, with the core's message.
    architecture.check_layer(model, hparams.layer)
    return Location(layers=(hparams.layer,), modules=(architecture.path("mlp_out", hparams.layer),))


@hookimpl
def compute_update(model, tokenizer, requests, hparams, architecture):
    return compute_foo_update(model, tokenizer, requests, hparams, architecture)
