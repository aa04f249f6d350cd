"""The ``ike`` method: the class the entry point's module registers."""

from __future__ import annotations

from editmethods.architectures import DECODER_ONLY
from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_ike.hparams_ike import IKEHyperParams
from editmethods_ike.method import METHOD, apply_ike, compute_ike_update, rollback_ike


class IKE(Method):
    # The decoder-only architectures: the ones the in-context router is checked on.
    spec = MethodSpec(
        name=METHOD,
        hparams_class=IKEHyperParams,
        description="In-context knowledge editing: retrieved demonstrations and the new fact "
                    "in the prompt; weights frozen",
        model_types=DECODER_ONLY,
        batch=True,
        writes_weights=False,
    )

    def compute_update(self, model, tokenizer, requests, hparams):
        return compute_ike_update(model, tokenizer, requests, hparams)

    # Their parameters are the hooks' own argument names: they serve as the steps directly.
    apply = staticmethod(apply_ike)
    rollback = staticmethod(rollback_ike)

    def commit(self):
        # A prompt cannot be folded into weights: the context simply stays for good.
        return True
