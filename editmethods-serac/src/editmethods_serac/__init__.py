"""SERAC for editmethods: edit memory, scope classifier, counterfactual model; weights frozen.

>>> from editmethods import Editor, EditRequest                          # doctest: +SKIP
>>> editor = Editor.from_pretrained("testbed-gpt2")                      # doctest: +SKIP
>>> editor.edit(EditRequest(prompt="Ann Kowal was born in", subject="Ann Kowal",
...             target_new="Lyon"), method="serac")                     # doctest: +SKIP
"""

from editmethods_serac.checkpoint import CheckpointError, base_fingerprint
from editmethods_serac.hparams_serac import SERACHyperParams

__all__ = ["CheckpointError", "SERACHyperParams", "base_fingerprint"]
