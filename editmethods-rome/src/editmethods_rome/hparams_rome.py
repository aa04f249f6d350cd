"""Hyper-parameters of ROME; EasyEdit's ROME YAML files load as they are.

Scale-dependent values are relative to the model, so that one setting transfers across sizes:
``clamp_norm_factor`` multiplies the norm of the original value at the subject token (as in
the paper), ``v_weight_decay`` divides by its square, and ``mom2_ridge`` is a multiple of
``trace(C)/d`` (the mean variance of a key coordinate), not an absolute number.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams, tuple_of

FactToken = Literal["subject_last", "subject_first", "subject_first_after_last", "last"]


_pairs = tuple_of(object)
_ints = tuple_of(int)


def length_params(value: Any) -> tuple[tuple[int, ...], ...]:
    """attrs converter of ``context_template_length_params``: ``[[tokens, count], ...]`` -> a
    tuple of tuples of ints; a string or a non-integer is refused, not coerced (files are
    checked by the loader before; this guards Python use). MEMIT's hparams use it too."""
    return tuple(_ints(p) for p in _pairs(value))


def check_length_params(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator of ``context_template_length_params``: each pair is
    ``[tokens >= 1, count >= 0]``.

    :raises ValueError: naming the field and the first bad pair.
    """
    for p in value:
        if len(p) != 2 or p[0] < 1 or p[1] < 0:
            raise ValueError(
                f"'{attribute.name}' must be a list of [tokens >= 1, count >= 0] pairs, got {list(p)}"
            )


_optional_ints = tuple_of(int, optional=True)


def optional_layers(value: Any) -> tuple[int, ...] | None:
    """attrs converter of ``layers``: ``None`` (choose by the model's depth, see
    :mod:`editmethods_rome.depth`) or a tuple of ints; a string (``"45"``) or a non-integer is
    refused, never split or rounded. MEMIT's hparams use it too."""
    # a named function, not the converter itself: mypy's attrs plugin reads only named
    # functions, types and lambdas as converters
    return _optional_ints(value)


def _optional_template(instance, attribute, value):
    if value is not None and "{}" not in value and attribute.name.endswith("_tmp"):
        raise ValueError(f"'{attribute.name}' must contain '{{}}' for the layer, got {value!r}")


@attrs.frozen
class LocateThenEditHyperParams(HyperParams):
    """What ROME and MEMIT share: the value optimization at the subject token, the corpus
    statistics, and EasyEdit's module templates. Each method adds its own layers, clamp and
    context prefixes."""

    fact_token: FactToken = "subject_last"
    #: Steps, learning rate, weight decay and KL weight of the v* optimization.
    v_num_grad_steps: int = attrs.field(default=20, validator=v.ge(1))
    v_lr: float = attrs.field(default=0.5, validator=v.gt(0))
    #: The loss is read from the model's logits (after the last layer); kept for EasyEdit's
    #: files, which set it for their model's depth (another value only warns).
    v_loss_layer: int | None = None
    v_weight_decay: float = attrs.field(default=0.5, validator=v.ge(0))
    kl_factor: float = attrs.field(default=0.0625, validator=v.ge(0))
    #: Stop optimizing v* once the target's NLL is below this.
    v_early_stop: float = attrs.field(default=5e-2, validator=v.ge(0))
    #: Use C⁻¹ in the update (the paper). Off only when you ask for it.
    mom2_adjustment: bool = True
    #: C + mom2_ridge · trace(C)/d · I before solving (0 = the paper; small models need ~0.1).
    mom2_ridge: float = attrs.field(default=0.0, validator=v.ge(0))
    #: Module templates (``{}`` = layer); ``None`` = the architecture's own paths.
    rewrite_module_tmp: str | None = attrs.field(default=None, validator=_optional_template)
    layer_module_tmp: str | None = attrs.field(default=None, validator=_optional_template)
    mlp_module_tmp: str | None = attrs.field(default=None, validator=_optional_template)
    attn_module_tmp: str | None = attrs.field(default=None, validator=_optional_template)
    ln_f_module: str | None = None
    lm_head_module: str | None = None
    #: Statistics corpus: ``model-samples`` (texts sampled from the model, offline), a text
    #: file, a folder of .txt, ``wikipedia`` / ``wikitext`` / ``hf:NAME`` (streamed, needs
    #: ``datasets``), ``facts:DATA``, a name registered with
    #: ``editmethods.toolkit.stats.register_corpus``, a ``module:function`` spec; or precomputed
    #: statistics, ``npz:PATH`` (ROME's/EasyEdit's files). See docs/statistics.md.
    mom2_dataset: str = "wikipedia"
    mom2_n_samples: int = attrs.field(default=100_000, validator=v.ge(1))
    mom2_dtype: Literal["float32", "float64"] = "float64"
    #: Tokens per statistics sample, and per statistics forward pass.
    mom2_max_length: int = attrs.field(default=256, validator=v.ge(1))
    mom2_token_budget: int = attrs.field(default=8192, validator=v.ge(1))
    #: Where layers come from: the ``layers`` field, or causal tracing (when installed).
    locate: Literal["hparams", "causal_trace"] = "hparams"


@attrs.frozen
class ROMEHyperParams(LocateThenEditHyperParams):
    """ROME: a rank-one update of one MLP output projection (Meng et al., 2022).

    Defaults are the paper's GPT-2 XL values except the layer and ``variant`` (chosen by
    measurement, see the README). ``layers`` unset (``None``) means: choose by the model's
    depth, ``floor(n/6 + 1/2)`` (GPT-J, LLaMA: 5), with a warning; the shipped YAML files
    set it per model.
    """

    layers: tuple[int, ...] | None = attrs.field(
        default=None, converter=optional_layers,
        validator=v.optional(v.and_(v.min_len(1), v.max_len(1))))
    #: ‖δ‖ ≤ clamp_norm_factor · ‖v₀‖ (v₀: the original value at the subject token).
    clamp_norm_factor: float = attrs.field(default=4.0, validator=v.gt(0))
    #: [[tokens, count], ...] of generated context prefixes (ROME: 10 of 5 and 10 of 10).
    context_template_length_params: tuple[tuple[int, int], ...] = attrs.field(
        default=((5, 10), (10, 10)), converter=length_params, validator=check_length_params)
    #: Seed of the prefix sampler.
    context_seed: int = 0
    #: "original": key k* averaged over the prefixes in C⁻¹k*, but the bare prompt's key and
    #: value in W k* (the paper's code); "consistent": the averaged key and value everywhere
    #: (r-ROME, Gupta et al. 2024).
    variant: Literal["original", "consistent"] = "consistent"
    #: EasyEdit's switch for the same choice (True = "original"); overrides ``variant``.
    original_implementation: bool | None = None

    @property
    def layer(self) -> int | None:
        """The layer set in hparams; ``None`` when the model's depth chooses it."""
        return self.layers[0] if self.layers else None

    @property
    def effective_variant(self) -> str:
        if self.original_implementation is not None:
            return "original" if self.original_implementation else "consistent"
        return self.variant
