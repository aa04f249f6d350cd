"""Hyper-parameters of MEMIT; EasyEdit's MEMIT YAML files load as they are.

λ (``mom2_update_weight``) weighs the corpus statistics against the new keys in
``ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹``. For a key k drawn like the corpus, ``kᵀ (λC)⁻¹ k ≈ d_in / λ``,
so how much of its residual an edit realizes depends on ``λ / d_in``, not on λ alone: the
published 15,000–20,000 were tuned for d_in = 6,400–16,384. ``mom2_update_weight_per_dim``
states λ in that transferable unit (λ = value · d_in); give one of the two.
"""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from editmethods_rome.contexts import MEMIT_STARTS
from editmethods_rome.hparams_rome import (
    LocateThenEditHyperParams,
    _check_length_params,
    _length_params,
)


def _layers(instance, attribute, value):
    if len(value) < 1:
        raise ValueError(f"'{attribute.name}' must list at least one layer")
    if list(value) != sorted(set(value)):
        raise ValueError(f"'{attribute.name}' must be increasing without repeats, got {list(value)}")


@attrs.frozen
class MEMITHyperParams(LocateThenEditHyperParams):
    """MEMIT: z at the last edit layer's residual, the residual spread over the layers.

    Defaults are the paper's GPT-2 XL values except the layers (0 and 1 here: set them per
    model, see the shipped YAML files).
    """

    layers: tuple[int, ...] = attrs.field(default=(0, 1), converter=tuple, validator=_layers)
    #: EasyEdit's key: only "all" (every listed layer is edited) is defined by the paper.
    layer_selection: Literal["all"] = "all"
    #: ‖δ‖ ≤ clamp_norm_factor · ‖z₀‖ (z₀: the residual at the subject, last edit layer).
    clamp_norm_factor: float = attrs.field(default=0.75, validator=v.gt(0))
    #: λ, absolute (the papers' unit). Ignored when ``mom2_update_weight_per_dim`` is set.
    mom2_update_weight: float = attrs.field(default=20_000.0, validator=v.gt(0))
    #: λ / d_in: the transferable unit (see the module docstring).
    mom2_update_weight_per_dim: float | None = attrs.field(default=None,
                                                           validator=v.optional(v.gt(0)))
    #: MEMIT's prefixes: 5 of 10 tokens after "The", "Therefore", "Because", "I", "You".
    context_template_length_params: tuple[tuple[int, int], ...] = attrs.field(
        default=((10, 5),), converter=_length_params, validator=_check_length_params)
    context_template_starts: tuple[str, ...] = attrs.field(default=MEMIT_STARTS, converter=tuple)
    context_seed: int = 0
    #: How many edits' z are optimized together in one forward/backward pass ("batched"),
    #: or one edit at a time as the reference code does ("sequential").
    z_batch_size: int = attrs.field(default=64, validator=v.ge(1))
    z_mode: Literal["batched", "sequential"] = "batched"

    def lam(self, d_in: int) -> float:
        """λ for a key width ``d_in``."""
        if self.mom2_update_weight_per_dim is not None:
            return self.mom2_update_weight_per_dim * d_in
        return self.mom2_update_weight
