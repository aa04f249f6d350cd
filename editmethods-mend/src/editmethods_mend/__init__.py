"""MEND for editmethods: a small network, trained ahead of time, that turns the fine-tuning
gradient of an edit into a fast, local weight change (Mitchell et al., ICLR 2022).

The public pieces: :class:`MENDHyperParams` (the method's settings), :class:`MENDEditor`
(the editor network), :func:`load_editor` / :func:`save_editor` (checkpoints tied to a base
model by hash) and :func:`train_editor` (the meta-trainer). Importing this package has no
side effects; ``torch`` is imported by the submodules that need it.
"""

from editmethods_mend.hparams_mend import MENDHyperParams

__all__ = ["MENDHyperParams"]
