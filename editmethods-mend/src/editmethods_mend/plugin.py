"""The ``mend`` method and its ``editmethods train mend`` command."""

from __future__ import annotations

from editmethods.architectures import DECODER_ONLY
from editmethods.hookspecs import hookimpl
from editmethods.method import Method
from editmethods.types import MethodSpec
from editmethods_mend.hparams_mend import MENDHyperParams


class MEND(Method):
    spec = MethodSpec(
        name="mend",
        hparams_class=MENDHyperParams,
        description="MEND: a meta-trained editor network maps the edit's fine-tuning gradient "
                    "to a low-rank weight change (Mitchell et al., 2022); needs a trained editor",
        # Decoder-only: the factor pass runs the model on prompt+target as one sequence
        # (the paper also edits T5; an encoder-decoder factor pass is not written yet).
        model_types=DECODER_ONLY,
        batch=True,
        writes_weights=True,
    )

    # The algorithm is imported on first use, so that loading the plugin (for `editmethods
    # plugins`, or to edit with another method) stays cheap.
    def locate(self, model, hparams, architecture):
        from editmethods_mend.method import locate_mend

        return locate_mend(model, hparams, architecture)

    def compute_update(self, model, tokenizer, requests, hparams, architecture):
        from editmethods_mend.method import compute_mend_update

        return compute_mend_update(model, tokenizer, requests, hparams, architecture)


@hookimpl
def register_commands(cli):
    from editmethods_mend.commands import register

    register(cli)
