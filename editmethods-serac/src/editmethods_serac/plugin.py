"""The ``serac`` method and its ``editmethods train serac`` command."""

from __future__ import annotations

from editmethods.architectures import DECODER_ONLY
from editmethods.hookspecs import hookimpl
from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_serac.hparams_serac import SERACHyperParams

METHOD = "serac"


class SERAC(Method):
    # The decoder-only architectures: the ones the in-context router is checked on.
    spec = MethodSpec(
        name=METHOD,
        hparams_class=SERACHyperParams,
        description="SERAC: edit memory + scope classifier + counterfactual model; base "
                    "weights frozen (Mitchell et al., 2022)",
        model_types=DECODER_ONLY,
        batch=True,
        writes_weights=False,
    )

    # The algorithm is imported on first use, so that loading the plugin (for `editmethods
    # plugins`, or to edit with another method) stays cheap.
    def compute_update(self, model, tokenizer, requests, hparams):
        from editmethods_serac.method import compute_serac_update

        return compute_serac_update(model, tokenizer, requests, hparams)

    def apply(self, model, tokenizer, update, handle):
        from editmethods_serac.method import apply_serac

        return apply_serac(model, tokenizer, update, handle)

    def rollback(self, model, handle):
        from editmethods_serac.method import rollback_serac

        return rollback_serac(model, handle)

    def commit(self):
        # A memory entry cannot be folded into the base weights: it simply stays for good.
        return True


@hookimpl
def register_commands(cli):
    from editmethods_serac.commands import register

    register(cli)
