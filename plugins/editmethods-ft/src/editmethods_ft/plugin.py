"""The ``ft`` method: the class the entry point's module registers."""

from __future__ import annotations

from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_ft.hparams_ft import FTHyperParams
from editmethods_ft.method import compute_ft_update


class FT(Method):
    spec = MethodSpec(
        name="ft",
        hparams_class=FTHyperParams,
        description="Fine-tuning of chosen weights: FT-M (target tokens, prompt masked) or "
                    "FT-L (L∞-bounded, ROME's baseline)",
        model_types=("*",),
        batch=True,
        writes_weights=True,
    )

    def compute_update(self, model, tokenizer, requests, hparams, location, architecture):
        return compute_ft_update(model, tokenizer, requests, hparams, location, architecture)
