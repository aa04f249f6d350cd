"""Hyper-parameters of ``foo``: a frozen attrs class, loaded strictly by the core.

Unknown keys, wrong types and out-of-range values are all reported at once with their path
(``'lr' must be > 0: -1.0 @ foo.yaml.lr``): give every field a type, a default and, where a
range matters, a validator.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams


@attrs.frozen
class FooHyperParams(HyperParams):
    """Normalized gradient steps on one MLP output weight."""

    #: The layer whose MLP output projection is edited.
    layer: int = attrs.field(default=0, validator=v.ge(0))
    #: Frobenius norm of each step (the change after ``num_steps`` is at most their sum).
    step_norm: float = attrs.field(default=1.0, validator=v.gt(0))
    num_steps: int = attrs.field(default=10, validator=v.ge(1))
    #: Stop early when the target's mean NLL falls below this.
    stop_loss: float = attrs.field(default=0.05, validator=v.ge(0))

    # Another tool's key that means the same thing -> ours (that tool's files then load).
    _aliases = {"edit_layer": "layer"}
