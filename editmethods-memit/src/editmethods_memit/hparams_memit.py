"""Hyper-parameters of MEMIT; EasyEdit's MEMIT YAML files load as they are.

λ weighs the corpus statistics against the new keys in ``ΔW = R Kᵀ (λ C + K Kᵀ)⁻¹``. For a
key k drawn like the corpus, ``kᵀ (λC)⁻¹ k ≈ d_in / λ``, so how much of its residual an edit
realizes depends on ``λ / d_in``, not on λ alone: the published 15,000–20,000 were tuned for
d_in = 6,400–18,944. Precedence, one rule:

1. ``mom2_update_weight_per_dim`` set: λ = that · d_in (the transferable unit);
2. else ``mom2_update_weight`` set: λ = that, absolute, as the file says (the papers' and
   EasyEdit's files); when that puts λ/d_in far from the published range (0.79–3.1: below
   0.4 or above 3.125) an edit warns, with the per-dimension value and the λ that keeps
   the published ratio on this model;
3. neither: λ = ``DEFAULT_LAMBDA_PER_DIM`` · d_in.

Setting both is refused: one of them would be ignored.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import attrs
from attrs import validators as v

from editmethods.hparams import tuple_of
from editmethods_rome.api import (
    MEMIT_STARTS,
    LocateThenEditHyperParams,
    check_length_params,
    length_params,
    optional_layers,
)

#: λ/d_in when hparams give no λ at all: between the papers' tuned GPT-J (0.92) and GPT-2 XL
#: (3.1) values, and in the middle of the range that edited all of a batch of 12 on
#: SmolLM2-135M (0.1-2; see the README).
DEFAULT_LAMBDA_PER_DIM = 1.0

#: λ/d_in of the published files on the models they were written for (λ / d_in).
PUBLISHED_LAMBDA_PER_DIM = {
    "gpt2-xl": 20_000 / 6_400, "gpt-j-6b": 15_000 / 16_384, "llama-2-7b": 15_000 / 11_008,
    "llama-3-8b / mistral-7b": 15_000 / 14_336, "qwen2.5-7b": 15_000 / 18_944,
}
#: An absolute λ whose λ/d_in here is outside this range warns: below half the smallest
#: published ratio, or above the largest (on SmolLM2-135M, 12 edits, λ/d_in 0.1-2 all gave
#: efficacy 12/12, 4 and 6.25 gave 10/12, 9.8 gave 6/12; too small a λ costs neighborhood
#: in large batches, see the README's sweeps).
LAMBDA_PER_DIM_RANGE = (min(PUBLISHED_LAMBDA_PER_DIM.values()) / 2,
                        max(PUBLISHED_LAMBDA_PER_DIM.values()))
#: The reference for "the same λ on another model": EasyEdit's LLaMA-2-7B file (d_in 11,008).
REFERENCE_D_IN = 11_008


_strs = tuple_of(str)


def _starts(value: Any) -> tuple[str, ...]:
    """attrs converter of ``context_template_starts``: a list of strings (a bare string is
    refused, not split). Named: mypy's attrs plugin reads no call expression as a converter."""
    return _strs(value)


def _layers(instance, attribute, value):
    if value is None:  # choose by the model's depth
        return
    if len(value) < 1:
        raise ValueError(f"'{attribute.name}' must list at least one layer")
    if list(value) != sorted(set(value)):
        raise ValueError(f"'{attribute.name}' must be increasing without repeats, got {list(value)}")


@attrs.frozen
class MEMITHyperParams(LocateThenEditHyperParams):
    """MEMIT: z at the last edit layer's residual, the residual spread over the layers.

    Defaults are the paper's GPT-2 XL values except the layers and λ. ``layers`` unset
    (``None``) means: choose by the model's depth (up to five layers from
    ``floor(n/6 + 1/2) - 1``: GPT-J, LLaMA 4–8), with a warning; λ: see the module docstring.
    The shipped YAML files set both per model.
    """

    layers: tuple[int, ...] | None = attrs.field(default=None, converter=optional_layers,
                                                 validator=_layers)
    #: EasyEdit's key: only "all" (every listed layer is edited) is defined by the paper.
    layer_selection: Literal["all"] = "all"
    #: ‖δ‖ ≤ clamp_norm_factor · ‖z₀‖ (z₀: the residual at the subject, last edit layer).
    clamp_norm_factor: float = attrs.field(default=0.75, validator=v.gt(0))
    #: λ, absolute (the papers' unit; warns when far off for this model's d_in).
    mom2_update_weight: float | None = attrs.field(default=None, validator=v.optional(v.gt(0)))
    #: λ / d_in: the transferable unit (see the module docstring). Not with the above.
    mom2_update_weight_per_dim: float | None = attrs.field(default=None,
                                                           validator=v.optional(v.gt(0)))
    #: MEMIT's prefixes: 5 of 10 tokens after "The", "Therefore", "Because", "I", "You".
    context_template_length_params: tuple[tuple[int, int], ...] = attrs.field(
        default=((10, 5),), converter=length_params, validator=check_length_params)
    context_template_starts: tuple[str, ...] = attrs.field(default=MEMIT_STARTS,
                                                              converter=_starts)
    context_seed: int = 0
    #: How many edits' z are optimized together in one forward/backward pass ("batched"),
    #: or one edit at a time as the reference code does ("sequential").
    z_batch_size: int = attrs.field(default=64, validator=v.ge(1))
    z_mode: Literal["batched", "sequential"] = "batched"

    def __attrs_post_init__(self) -> None:
        if self.mom2_update_weight is not None and self.mom2_update_weight_per_dim is not None:
            raise ValueError(
                f"set one of mom2_update_weight (absolute λ, {self.mom2_update_weight:g}) and "
                f"mom2_update_weight_per_dim (λ/d_in, {self.mom2_update_weight_per_dim:g}), not "
                "both: remove one (λ/d_in transfers across model sizes)"
            )

    def lam(self, d_in: int) -> float:
        """λ for a key width ``d_in`` (the precedence of the module docstring)."""
        if self.mom2_update_weight_per_dim is not None:
            return self.mom2_update_weight_per_dim * d_in
        if self.mom2_update_weight is not None:
            return self.mom2_update_weight
        return DEFAULT_LAMBDA_PER_DIM * d_in


def lambda_for(hp: MEMITHyperParams, d_in: int, method: str = "memit") -> float:
    """``hp.lam(d_in)``, warning when an absolute λ is far from the published λ/d_in range
    on this model (the value is still used as given)."""
    lam = hp.lam(d_in)
    low, high = LAMBDA_PER_DIM_RANGE
    if hp.mom2_update_weight is not None and not low <= lam / d_in <= high:
        ref = lam / REFERENCE_D_IN
        warnings.warn(
            f"{method}: mom2_update_weight={lam:g} is an absolute λ, which is λ/d_in = "
            f"{lam / d_in:.3g} at this model's key width d_in={d_in}, far from the published "
            f"values on their own models (λ/d_in {min(PUBLISHED_LAMBDA_PER_DIM.values()):.2f}-"
            f"{max(PUBLISHED_LAMBDA_PER_DIM.values()):.2f}; warned outside {low:.2f}-{high:.2f}): λ is "
            f"used as given, but edits may be under- or over-realized (λ=15000 on "
            f"SmolLM2-135M, d_in 1536, measured efficacy 0.50). The same λ is λ/d_in = "
            f"{ref:.3g} on LLaMA-2-7B (d_in {REFERENCE_D_IN}); that ratio here is "
            f"λ = {ref * d_in:.0f}: set mom2_update_weight_per_dim: {ref:.3g} instead of "
            "mom2_update_weight to scale λ with the model",
            stacklevel=3,
        )
    return lam
