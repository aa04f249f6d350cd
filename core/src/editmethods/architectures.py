"""Module paths of model architectures, looked up by ``model.config.model_type``.

Paths are templates with ``{}`` for the layer index. Methods ask for a *role* (``"mlp_out"``)
and a layer, never for a concrete name, so the same method runs on GPT-2, LLaMA or T5.
An architecture the table does not know is declared with :class:`Architecture` (pass it to
``Editor(..., architecture=...)`` or register it from a plugin with ``register_architectures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

from editmethods.errors import ArchitectureError

ROLES = ("layer", "attn", "mlp", "mlp_in", "mlp_gate", "mlp_out")


@attrs.frozen
class Architecture:
    """Module paths for one architecture.

    >>> gpt2 = BUILTIN["gpt2"]
    >>> gpt2.path("mlp_out", 3)
    'transformer.h.3.mlp.c_proj'
    """

    model_type: str
    #: One transformer block (its output is the residual stream after the layer).
    layer: str
    attn: str
    mlp: str
    #: The MLP's input projection (for gated MLPs the "up" projection).
    mlp_in: str
    #: The MLP's output projection: the key -> value memory that ROME/MEMIT edit.
    mlp_out: str
    embed: str
    final_norm: str
    lm_head: str
    #: Config attributes that may hold the number of layers, first found wins.
    n_layers_keys: tuple[str, ...] = ("num_hidden_layers", "n_layer", "num_layers")
    mlp_gate: str | None = None
    #: For encoder-decoder models: the encoder stack (the main paths are the decoder's).
    encoder: Architecture | None = None

    def path(self, role: str, layer: int | None = None) -> str:
        """The module name of ``role`` at ``layer`` (``role`` one of :data:`ROLES` or
        ``embed``, ``final_norm``, ``lm_head``)."""
        template = getattr(self, role, None)
        if not isinstance(template, str):
            raise ArchitectureError(
                f"architecture {self.model_type!r} has no module for role {role!r}"
            )
        if "{}" in template:
            if layer is None:
                raise ArchitectureError(f"role {role!r} needs a layer index")
            return template.format(layer)
        return template

    def n_layers(self, model: torch.nn.Module) -> int:
        config = model.config
        keys = self.n_layers_keys
        for key in keys:
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
        raise ArchitectureError(
            f"cannot read the number of layers of {self.model_type!r} from config keys {keys}"
        )

    def check_layer(self, model: torch.nn.Module, layer: int) -> None:
        n = self.n_layers(model)
        if not isinstance(layer, int) or not 0 <= layer < n:
            raise ArchitectureError(
                f"layer {layer} is outside the model: {self.model_type} has layers 0..{n - 1}"
            )

    def module(self, model: torch.nn.Module, role: str, layer: int | None = None) -> torch.nn.Module:
        """The module of ``role`` at ``layer`` in ``model``."""
        if layer is not None and "{}" in (getattr(self, role, "") or ""):
            self.check_layer(model, layer)
        return get_module(model, self.path(role, layer))


def get_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule called ``name``; a clear error when it does not exist."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ArchitectureError(
            f"module {name!r} is not in the model ({type(model).__name__}); "
            f"check the module template in your hparams or the architecture's paths"
        ) from None


def get_parameter(model: torch.nn.Module, name: str) -> torch.nn.Parameter:
    """The parameter called ``name``; a clear error when it does not exist."""
    try:
        return model.get_parameter(name)
    except AttributeError:
        raise ArchitectureError(f"parameter {name!r} is not in the model") from None


def parameter_path(model: torch.nn.Module, name: str) -> str:
    """Where the parameter ``name`` is registered. The same as ``name`` unless a wrapper
    exposes it under a shorter path (peft's LoRA layers show their base layer's weight as
    ``weight``; it lives at ``base_layer.weight``): ``torch.func.functional_call`` needs
    the registered path."""
    param = get_parameter(model, name)
    prefix, _, leaf = name.rpartition(".")
    module = model.get_submodule(prefix) if prefix else model
    if module._parameters.get(leaf) is param:
        return name
    for sub, p in module.named_parameters():
        if p is param:
            return f"{prefix}.{sub}" if prefix else sub
    raise ArchitectureError(f"parameter {name!r} is not registered under {prefix or 'the model'!r}")


def weight_layout(module: torch.nn.Module) -> str:
    """``"in_out"`` for GPT-2's Conv1D (``y = x W``), ``"out_in"`` for ``nn.Linear``
    (``y = x Wᵀ``): which way round a rank-one update goes. A wrapper around such a layer
    (peft's LoRA layers) has its base layer's layout."""
    base = getattr(module, "base_layer", None)
    while isinstance(base, torch.nn.Module):
        module = base
        base = getattr(module, "base_layer", None)
    if type(module).__name__ == "Conv1D":
        return "in_out"
    if isinstance(module, torch.nn.Linear):
        return "out_in"
    raise ArchitectureError(
        f"{type(module).__name__} is neither nn.Linear nor Conv1D: cannot write a weight update"
    )


def _decoder_only(model_type: str, prefix: str, attn: str, mlp_in: str, mlp_out: str, embed: str,
                  final_norm: str, lm_head: str = "lm_head", mlp_gate: str | None = None,
                  mlp: str = "mlp") -> Architecture:
    layer = prefix + ".{}"
    return Architecture(
        model_type=model_type,
        layer=layer,
        attn=f"{layer}.{attn}",
        mlp=f"{layer}.{mlp}",
        mlp_in=f"{layer}.{mlp}.{mlp_in}",
        mlp_out=f"{layer}.{mlp}.{mlp_out}",
        mlp_gate=f"{layer}.{mlp}.{mlp_gate}" if mlp_gate else None,
        embed=embed,
        final_norm=final_norm,
        lm_head=lm_head,
    )


def _llama_like(model_type: str) -> Architecture:
    return _decoder_only(model_type, "model.layers", "self_attn", "up_proj", "down_proj",
                         "model.embed_tokens", "model.norm", mlp_gate="gate_proj")


#: The architectures known without any plugin, by ``config.model_type``.
BUILTIN: Mapping[str, Architecture] = {
    "gpt2": _decoder_only("gpt2", "transformer.h", "attn", "c_fc", "c_proj", "transformer.wte",
                          "transformer.ln_f"),
    "gptj": _decoder_only("gptj", "transformer.h", "attn", "fc_in", "fc_out", "transformer.wte",
                          "transformer.ln_f"),
    "gpt_neox": _decoder_only("gpt_neox", "gpt_neox.layers", "attention", "dense_h_to_4h",
                              "dense_4h_to_h", "gpt_neox.embed_in", "gpt_neox.final_layer_norm"),
    "llama": _llama_like("llama"),
    "mistral": _llama_like("mistral"),
    "qwen2": _llama_like("qwen2"),
    "t5": Architecture(
        model_type="t5",
        layer="decoder.block.{}",
        attn="decoder.block.{}.layer.0.SelfAttention",
        mlp="decoder.block.{}.layer.2.DenseReluDense",
        mlp_in="decoder.block.{}.layer.2.DenseReluDense.wi",
        mlp_out="decoder.block.{}.layer.2.DenseReluDense.wo",
        embed="shared",
        final_norm="decoder.final_layer_norm",
        lm_head="lm_head",
        n_layers_keys=("num_decoder_layers", "num_layers"),
        encoder=Architecture(
            model_type="t5-encoder",
            layer="encoder.block.{}",
            attn="encoder.block.{}.layer.0.SelfAttention",
            mlp="encoder.block.{}.layer.1.DenseReluDense",
            mlp_in="encoder.block.{}.layer.1.DenseReluDense.wi",
            mlp_out="encoder.block.{}.layer.1.DenseReluDense.wo",
            embed="shared",
            final_norm="encoder.final_layer_norm",
            lm_head="lm_head",
            n_layers_keys=("num_layers",),
        ),
    ),
}

#: The decoder-only model types of :data:`BUILTIN` (``gpt2``, ``gptj``, ``gpt_neox``,
#: ``llama``, ``mistral``, ``qwen2``): what a method that reads a causal LM's residual stream
#: or prompt declares as ``MethodSpec(model_types=DECODER_ONLY)``.
DECODER_ONLY: tuple[str, ...] = tuple(t for t, a in BUILTIN.items() if a.encoder is None)


def resolve(model: Any, table: Mapping[str, Architecture]) -> Architecture:
    """The architecture of ``model`` from ``table`` by ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type is None:
        raise ArchitectureError(
            "the model has no config.model_type: pass architecture=Architecture(...) to the Editor"
        )
    if model_type not in table:
        known = ", ".join(sorted(table))
        raise ArchitectureError(
            f"unknown architecture {model_type!r} (known: {known}). Declare its module paths: "
            f"Editor(model, tokenizer, architecture=Architecture(model_type={model_type!r}, "
            "layer='model.layers.{}', attn='model.layers.{}.self_attn', mlp='model.layers.{}.mlp', "
            "mlp_in='model.layers.{}.mlp.up_proj', mlp_out='model.layers.{}.mlp.down_proj', "
            "embed='model.embed_tokens', final_norm='model.norm', lm_head='lm_head')), "
            "or register it from a plugin with the register_architectures hook"
        )
    return table[model_type]
