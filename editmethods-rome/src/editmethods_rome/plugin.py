"""The ``rome`` method: the class the entry point's module registers."""

from __future__ import annotations

from editmethods.architectures import DECODER_ONLY
from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_rome.hparams_rome import ROMEHyperParams
from editmethods_rome.method import compute_rome_update, locate_rome


class ROME(Method):
    # The decoder-only architectures: each has a linear MLP output projection to rewrite.
    spec = MethodSpec(
        name="rome",
        hparams_class=ROMEHyperParams,
        description="ROME: rank-one update of one MLP output projection, with C⁻¹ "
                    "(Meng et al. 2022; r-ROME's consistent variant by default)",
        model_types=DECODER_ONLY,
        batch=False,
        writes_weights=True,
    )

    def locate(self, method, model, tokenizer, requests, hparams, architecture):
        return locate_rome(model, tokenizer, requests, hparams, architecture, method)

    def compute_update(self, method, model, tokenizer, requests, hparams, location, architecture):
        return compute_rome_update(model, tokenizer, requests, hparams, location, architecture,
                                   method)
