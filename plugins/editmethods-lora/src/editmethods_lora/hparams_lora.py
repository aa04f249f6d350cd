"""Hyper-parameters of the ``lora`` method (EasyEdit's LoRA files load as they are)."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from editmethods.hparams import HyperParams


def _zero_only(why: str):
    def check(instance, attribute, value):
        if value:
            raise ValueError(f"'{attribute.name}' must be 0 or false: {why}; got {value}")

    return check


def _plain_lora_only(instance, attribute, value):
    if value != "lora":
        raise ValueError(
            f"'lora_type' {value!r} is not implemented: only 'lora' is. AdaLoRA needs peft's "
            "rank allocator driving a whole PeftModel through a training schedule, which the "
            "few steps of one edit do not give; an 'adalora' that never reallocated rank "
            "would be plain LoRA under another name. Set lora_type: lora"
        )


@attrs.frozen
class LoRAHyperParams(HyperParams):
    """Train one LoRA adapter per edit on the edit's target tokens (prompt masked).

    ``target_modules`` follows peft: a name matches every module whose full name is it or
    ends with ``"." + name`` (``["q_proj", "v_proj"]``), restricted to ``layers`` when given
    (EasyEdit passes ``layers`` as peft's ``layers_to_transform``; empty = every layer).
    ``target_modules: null`` (the default) means the MLP output projection of each layer in
    ``layers``, found through the model's architecture, so one file serves GPT-2, LLaMA, T5.
    """

    lora_type: Literal["lora", "adalora"] = attrs.field(default="lora", validator=_plain_lora_only)
    #: Layers to adapt; empty = all layers.
    layers: tuple[int, ...] = ()
    #: Module names (peft suffix matching); ``None`` = the MLP output projection.
    target_modules: tuple[str, ...] | None = None
    rank: int = attrs.field(default=8, validator=v.ge(1))
    lora_alpha: float = attrs.field(default=32.0, validator=v.gt(0))
    lora_dropout: float = attrs.field(default=0.0, validator=[v.ge(0), v.lt(1)])
    #: Scale by alpha/sqrt(rank) instead of alpha/rank (rsLoRA).
    use_rslora: bool = False
    num_steps: int = attrs.field(default=70, validator=v.ge(1))
    lr: float = attrs.field(default=5e-3, validator=v.gt(0))
    weight_decay: float = attrs.field(default=0.0, validator=v.ge(0))
    #: Stop when the mean target NLL falls below this (0 = always run ``num_steps``).
    early_stop_loss: float = attrs.field(default=1e-2, validator=v.ge(0))
    #: Requests per optimizer step.
    batch_size: int = attrs.field(default=128, validator=v.ge(1))
    #: Prompt tokens kept (the last ones) per training example.
    max_length: int = attrs.field(default=30, validator=v.ge(1))
    #: Seeds the adapter's initialization and dropout (the global RNG is left untouched).
    seed: int = 0
    kl_factor: float = attrs.field(
        default=0.0, validator=_zero_only("lora has no KL term (EasyEdit's files set 0)"))
    #: 0 or false (EasyEdit's files write false): the only values a plain LoRA edit supports.
    norm_constraint: bool | float = attrs.field(
        default=0.0,
        validator=_zero_only("lora does not bound the adapter's norm (EasyEdit's files set "
                             "false); bound the change with a smaller rank, lr or num_steps"))

    _aliases = {"r": "rank", "alpha": "lora_alpha"}
