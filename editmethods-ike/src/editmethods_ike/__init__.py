"""IKE for editmethods: in-context knowledge editing with retrieved demonstrations.

>>> from editmethods import Editor, EditRequest                          # doctest: +SKIP
>>> editor = Editor.from_pretrained("testbed-gpt2")                      # doctest: +SKIP
>>> editor.edit(EditRequest(prompt="Ann Kowal was born in", subject="Ann Kowal",
...             target_new="Lyon"), method="ike")                       # doctest: +SKIP
"""

# The encoder and the router live in the core's toolkit (SERAC uses them too); they are
# re-exported here because IKE's users have imported them from this package.
from editmethods.toolkit.encoder import DEFAULT_ENCODER, EncoderError, SentenceEncoder, get_encoder
from editmethods.toolkit.routing import ContextRouter, Route
from editmethods_ike.demonstrations import (
    Demonstration,
    demonstrations_from_records,
    load_demonstrations,
)
from editmethods_ike.hparams_ike import IKEHyperParams

__all__ = [
    "ContextRouter", "DEFAULT_ENCODER", "Demonstration", "EncoderError", "IKEHyperParams", "Route",
    "SentenceEncoder", "demonstrations_from_records", "get_encoder", "hparams_path",
    "load_demonstrations",
]


def hparams_path(name: str = "ike") -> str:
    """Path of a bundled hparams file (``ike`` or ``testbed-gpt2``)."""
    from editmethods.hparams import shipped_hparams

    return str(shipped_hparams(__file__, name, method="IKE"))
