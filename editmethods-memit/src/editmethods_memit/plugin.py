"""The ``memit`` method: the class the entry point's module registers."""

from __future__ import annotations

from editmethods.architectures import DECODER_ONLY
from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_memit.hparams_memit import MEMITHyperParams
from editmethods_memit.method import compute_memit_update, locate_memit


class MEMIT(Method):
    spec = MethodSpec(
        name="memit",
        hparams_class=MEMITHyperParams,
        description="MEMIT: many facts at once, spread over a range of MLP layers "
                    "(Meng et al. 2023), with the z vectors of a batch optimized together",
        model_types=DECODER_ONLY,
        batch=True,
        writes_weights=True,
    )

    def locate(self, method, model, tokenizer, requests, hparams, architecture):
        return locate_memit(model, tokenizer, requests, hparams, architecture, method)

    def compute_update(self, method, model, tokenizer, requests, hparams, location, architecture):
        return compute_memit_update(model, tokenizer, requests, hparams, location, architecture,
                                    method)
