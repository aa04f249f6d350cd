"""Hyper-parameters of the ``mend`` method (what an edit uses; training settings live in
:class:`editmethods_mend.train.TrainConfig`)."""

from __future__ import annotations

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams

#: ``checkpoint`` value: the bundled editor whose base-model hash matches the model.
AUTO = "auto"
#: ``checkpoint`` value: a freshly initialized (identity) editor: a plain gradient step.
UNTRAINED = "untrained"


def _roles(instance, attribute, value):
    allowed = ("mlp_in", "mlp_out", "mlp_gate")
    bad = [r for r in value if r not in allowed]
    if bad or not value:
        raise ValueError(f"'roles' must be a non-empty subset of {allowed}; got {list(value)}")


@attrs.frozen
class MENDHyperParams(HyperParams):
    """Settings of a MEND edit.

    ``checkpoint`` picks the editor network: ``"auto"`` finds the editor bundled with this
    package for the model being edited (matched by a hash of the model's weights),
    a folder path loads a trained editor (``editmethods train mend`` writes one), and
    ``"untrained"`` builds a fresh identity-initialized editor, which makes the edit a plain
    (un-normalized) gradient step of size ``edit_lr``: useful only to test the mechanics.

    ``layers`` and ``roles`` name the edited weights; empty ``layers`` means every weight the
    trained editor covers. Naming a weight the editor was not trained for is refused.
    """

    checkpoint: str = AUTO
    layers: tuple[int, ...] = ()
    roles: tuple[str, ...] = attrs.field(default=("mlp_in", "mlp_out"), validator=_roles)
    #: Step size of the untrained editor (a trained editor has learned one per weight).
    edit_lr: float = attrs.field(default=0.1, validator=v.gt(0))
    #: Rank of the untrained editor's low-rank layers.
    rank: int = attrs.field(default=16, validator=v.ge(1))
    #: Longest prompt + target, in tokens, the gradient is taken on.
    max_length: int = attrs.field(default=64, validator=v.ge(2))
