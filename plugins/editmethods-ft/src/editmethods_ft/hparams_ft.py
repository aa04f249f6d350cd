"""Hyper-parameters of the fine-tuning baselines."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams


def _zero_only(instance, attribute, value):
    if value != 0:
        raise ValueError(
            f"'{attribute.name}' must be 0: ft has no KL term (EasyEdit's files set it to 0); "
            f"got {value}"
        )


@attrs.frozen
class FTHyperParams(HyperParams):
    """Fine-tune the weights of chosen modules on the edit's target.

    ``objective="target_new"`` is FT-M: cross-entropy on the target tokens only, the prompt
    masked, teacher forced. ``objective="prompt_last"`` is FT-L as EasyEdit runs it: the
    target's tokens scored at the prompt's last position. Either can be bounded with
    ``norm_constraint`` (an L∞ bound on the change of each weight, ROME's FT-L baseline).
    """

    layers: tuple[int, ...] = attrs.field(default=(0,), validator=v.min_len(1))
    #: Module template with ``{}`` for the layer; ``None`` = the MLP output projection.
    rewrite_module_tmp: str | None = None
    objective: Literal["target_new", "prompt_last"] = "target_new"
    num_steps: int = attrs.field(default=25, validator=v.ge(1))
    lr: float = attrs.field(default=5e-4, validator=v.gt(0))
    weight_decay: float = attrs.field(default=0.0, validator=v.ge(0))
    #: L∞ bound on each weight's change; 0 or None = unbounded.
    norm_constraint: float | None = attrs.field(default=None, validator=v.optional(v.ge(0)))
    #: Stop when the loss falls below this.
    early_stop_loss: float = attrs.field(default=1e-2, validator=v.ge(0))
    batch_size: int = attrs.field(default=1, validator=v.ge(1))
    max_length: int = attrs.field(default=40, validator=v.ge(1))
    kl_factor: float = attrs.field(default=0.0, validator=_zero_only)

    _aliases = {"objective_optimization": "objective"}
