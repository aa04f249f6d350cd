"""The ``lora`` method: one named peft adapter per edit.

``apply`` attaches the edit's adapter under ``handle.edit_id`` (base weights are never
written), ``rollback`` deletes it (other edits' adapters stay active), ``commit`` merges it
into the base weights.
"""

from __future__ import annotations

from editmethods.errors import EditError
from editmethods.method import Method
from editmethods.types import Location, MethodSpec, Update
from editmethods_lora import adapters
from editmethods_lora.hparams_lora import LoRAHyperParams
from editmethods_lora.training import train_adapter

METHOD = "lora"


class LoRA(Method):
    spec = MethodSpec(
        name=METHOD,
        hparams_class=LoRAHyperParams,
        description="LoRA through peft: one named adapter per edit; rollback deletes it, "
                    "commit merges it",
        model_types=("*",),
        batch=True,
        writes_weights=False,
    )

    def locate(self, model, requests, hparams, architecture):
        modules = adapters.target_module_names(model, hparams, architecture)
        return Location(layers=tuple(hparams.layers), modules=tuple(modules))

    def compute_update(self, model, tokenizer, requests, hparams, location, architecture):
        modules = list(location.modules) or adapters.target_module_names(model, hparams,
                                                                         architecture)
        weights, meta = train_adapter(model, tokenizer, requests, hparams, modules)
        # The adapter depends on the weights it wraps: their hashes tie a saved edit to its base.
        return Update(method=METHOD, payload=weights, meta=meta,
                      reads=tuple(f"{m}.weight" for m in modules))

    def apply(self, model, update: Update, handle):
        meta = update.meta
        try:
            modules = list(meta["modules"])
            rank, lora_alpha = int(meta["rank"]), float(meta["lora_alpha"])
            lora_dropout, use_rslora = float(meta["lora_dropout"]), bool(meta["use_rslora"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EditError(f"lora: the update's meta lacks {exc}; it was not made by lora") from None
        adapters.attach(model, handle.edit_id, modules, weights=update.payload, rank=rank,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, use_rslora=use_rslora)
        return model

    def rollback(self, model, handle):
        if not adapters.detach(model, handle.edit_id):
            raise EditError(f"lora: adapter {handle.edit_id!r} is not attached to this model")
        return True

    def commit(self, model, handle):
        # The merged form of the adapter; the editor writes it, then calls rollback to detach.
        deltas = adapters.merged_deltas(model, handle.edit_id)
        if not deltas:
            raise EditError(f"lora: adapter {handle.edit_id!r} is not attached to this model")
        return deltas
