"""LoRA editing for editmethods: one peft adapter per edit (method ``lora``)."""

from editmethods_lora.hparams_lora import LoRAHyperParams

__all__ = ["LoRAHyperParams"]
