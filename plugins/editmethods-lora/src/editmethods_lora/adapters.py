"""peft glue: attach, remove and merge one named LoRA adapter on the model the editor holds.

Adapters are injected into the existing model object with peft's ``inject_adapter_in_model``
(the editor keeps one model, so it must not be wrapped in a new ``PeftModel``). peft's
injection also changes global state that an edit must not leave behind; this module undoes
it: the base parameters' ``requires_grad`` flags, the ``peft_config`` attribute it sets on
the model, the active-adapter list of each layer (peft activates only the newest adapter;
every live edit must keep contributing), and the train/eval mode of the new modules. When a
module's last adapter is deleted, the peft layer is replaced by the original module, so the
model's state dict is again exactly the base model's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

import torch

from editmethods.architectures import Architecture, get_module, weight_layout
from editmethods.errors import ArchitectureError, EditError
from editmethods.types import Delta
from editmethods_lora.hparams_lora import LoRAHyperParams


def _lora_layer_cls():
    from peft.tuners.lora import LoraLayer

    return LoraLayer


class LoraModule(Protocol):
    """What this module uses of a peft LoRA layer (``peft.tuners.lora.Linear`` or a quantized
    variant): an ``nn.Module`` wrapping a base layer, with per-adapter modules. peft types
    them as ``nn.ModuleDict`` (items: ``nn.Module``); for the linear and Conv1D layers LoRA
    adapts here, A and B are ``nn.Linear``."""

    lora_A: Mapping[str, torch.nn.Linear]
    lora_B: Mapping[str, torch.nn.Linear]
    lora_dropout: Mapping[str, torch.nn.Module]
    training: bool

    def get_base_layer(self) -> torch.nn.Module: ...

    def get_delta_weight(self, adapter: str) -> torch.Tensor: ...

    def delete_adapter(self, adapter_name: str) -> None: ...

    def set_adapter(self, adapter_names: str | list[str], inference_mode: bool = False) -> None: ...

    def train(self, mode: bool = True) -> Any: ...


def _as_lora(module: torch.nn.Module) -> LoraModule:
    """``module``, known to be a peft LoRA layer (found by isinstance or just injected)."""
    return cast(LoraModule, module)


def target_module_names(model: torch.nn.Module, hp: LoRAHyperParams, arch: Architecture) -> list[str]:
    """The full names of the modules an edit with ``hp`` adapts (checked to exist)."""
    n_layers = arch.n_layers(model)
    for layer in hp.layers:
        arch.check_layer(model, layer)
    layers = list(hp.layers) or list(range(n_layers))
    if hp.target_modules is None:
        names = [arch.path("mlp_out", layer) for layer in layers]
        for name in names:
            get_module(model, name)
        return names
    prefixes = []
    for layer in layers:
        prefixes.append(arch.path("layer", layer) + ".")
        if arch.encoder is not None:
            prefixes.append(arch.encoder.path("layer", layer) + ".")
    LoraLayer = _lora_layer_cls()
    names = []
    for name, module in model.named_modules():
        if any(part in {"base_layer", "lora_A", "lora_B", "lora_dropout"} for part in name.split(".")):
            continue  # inside a peft layer: its wrapper is the target
        if not any(name == t or name.endswith("." + t) for t in hp.target_modules):
            continue
        if hp.layers and not any(name.startswith(p) for p in prefixes):
            continue
        base = module.get_base_layer() if isinstance(module, LoraLayer) else module
        if not _supported(base):
            raise EditError(
                f"lora: target module {name!r} is a {type(base).__name__}; LoRA adapts "
                "nn.Linear and GPT-2's Conv1D layers: choose other target_modules"
            )
        names.append(name)
    if not names:
        raise ArchitectureError(
            f"lora: target_modules {list(hp.target_modules)} match no module"
            + (f" in layers {list(hp.layers)}" if hp.layers else "")
            + f"; e.g. this model has {_examples(model)}"
        )
    return names


def _supported(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _examples(model: torch.nn.Module) -> str:
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _supported(m)})
    return ", ".join(repr(x) for x in leaves[:12])


def layers_with(model: torch.nn.Module, adapter: str) -> dict[str, LoraModule]:
    """The peft LoRA layers of ``model`` that hold ``adapter``, by module name."""
    LoraLayer = _lora_layer_cls()
    return {n: _as_lora(m) for n, m in model.named_modules()
            if isinstance(m, LoraLayer) and adapter in m.lora_A}


def adapter_names(model: torch.nn.Module) -> set[str]:
    """Every LoRA adapter attached anywhere in ``model``."""
    LoraLayer = _lora_layer_cls()
    return {a for m in model.modules() if isinstance(m, LoraLayer) for a in m.lora_A}


@contextlib.contextmanager
def _keep_requires_grad(model: torch.nn.Module) -> Iterator[None]:
    # peft freezes every non-adapter parameter; the user's flags are not ours to change.
    flags = {id(p): (p, p.requires_grad) for p in model.parameters()}
    try:
        yield
    finally:
        for p, flag in flags.values():
            p.requires_grad_(flag)


def attach(
    model: torch.nn.Module,
    adapter: str,
    modules: Sequence[str],
    *,
    rank: int,
    lora_alpha: float,
    lora_dropout: float,
    use_rslora: bool,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Inject adapter ``adapter`` into ``modules`` of ``model`` (in place) and activate it
    next to the adapters already there. ``weights`` (``{module}.lora_A`` / ``.lora_B``)
    sets the adapter's matrices; without it peft initializes them (B = 0: no change yet).
    The adapter's parameters are float32, whatever the model's dtype."""
    from peft import LoraConfig, inject_adapter_in_model

    if adapter in adapter_names(model):
        raise EditError(f"lora: an adapter named {adapter!r} is already attached")
    LoraLayer = _lora_layer_cls()
    had_config = hasattr(model, "peft_config")
    modes = {}
    by_layout: dict[bool, list[str]] = {}
    for name in modules:
        module = get_module(model, name)
        base = module.get_base_layer() if isinstance(module, LoraLayer) else module
        modes[name] = module.training
        by_layout.setdefault(weight_layout(base) == "in_out", []).append(name)
    try:
        devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
        # peft draws the new matrices' init from the global RNG: keep the caller's stream
        with _keep_requires_grad(model), warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
            # "Already found a `peft_config` attribute": several adapters are what we want.
            warnings.filterwarnings("ignore", message=".*peft_config.*")
            for fan_in_fan_out, names in by_layout.items():
                # peft types lora_alpha as int, but only divides by it (alpha / r): floats work
                config = LoraConfig(r=rank, lora_alpha=lora_alpha,  # type: ignore[arg-type]
                                    lora_dropout=lora_dropout, use_rslora=use_rslora,
                                    target_modules=list(names),
                                    fan_in_fan_out=fan_in_fan_out, bias="none")
                inject_adapter_in_model(config, model, adapter_name=adapter)
        for name in modules:
            layer = _as_lora(get_module(model, name))
            layer.lora_A[adapter].float()
            layer.lora_B[adapter].float()
            # new modules start in train mode; the wrapper follows the module it replaced
            layer.train(modes[name])
            if weights is not None:
                with torch.no_grad():
                    layer.lora_A[adapter].weight.copy_(_weight(weights, f"{name}.lora_A", layer.lora_A[adapter]))
                    layer.lora_B[adapter].weight.copy_(_weight(weights, f"{name}.lora_B", layer.lora_B[adapter]))
        activate_all(model)
    except BaseException:
        detach(model, adapter)
        if not had_config and hasattr(model, "peft_config") and not model.peft_config:
            del model.peft_config
        raise


def _weight(weights: Mapping[str, torch.Tensor], key: str, linear: torch.nn.Linear) -> torch.Tensor:
    if key not in weights:
        raise EditError(f"lora: the update has no tensor {key!r}")
    w = weights[key]
    if tuple(w.shape) != tuple(linear.weight.shape):
        raise EditError(
            f"lora: tensor {key!r} has shape {tuple(w.shape)}, the adapter needs "
            f"{tuple(linear.weight.shape)} (saved for another model or rank?)"
        )
    return w.to(linear.weight.device, linear.weight.dtype)


def activate_all(model: torch.nn.Module) -> None:
    """Make every adapter of every LoRA layer active (all live edits contribute)."""
    LoraLayer = _lora_layer_cls()
    for module in model.modules():
        if isinstance(module, LoraLayer):
            # inference_mode: applied adapters are frozen; training asks for gradients itself.
            # In the order they were attached (not sorted by their random names): their
            # outputs are summed in this order, and the bits of a sum depend on it.
            module.set_adapter(list(module.lora_A.keys()), inference_mode=True)


def weights_of(model: torch.nn.Module, adapter: str) -> dict[str, torch.Tensor]:
    """The adapter's matrices, ``{module}.lora_A`` and ``{module}.lora_B``, on the CPU."""
    out = {}
    for name, layer in layers_with(model, adapter).items():
        out[f"{name}.lora_A"] = layer.lora_A[adapter].weight.detach().to("cpu", copy=True)
        out[f"{name}.lora_B"] = layer.lora_B[adapter].weight.detach().to("cpu", copy=True)
    return out


def parameters_of(model: torch.nn.Module, adapter: str) -> list[torch.Tensor]:
    """The adapter's A and B weights (``nn.Parameter``), to train."""
    params: list[torch.Tensor] = []
    for layer in layers_with(model, adapter).values():
        params += [layer.lora_A[adapter].weight, layer.lora_B[adapter].weight]
    return params


def dropouts_of(model: torch.nn.Module, adapter: str) -> list[torch.nn.Module]:
    return [layer.lora_dropout[adapter] for layer in layers_with(model, adapter).values()]


def detach(model: torch.nn.Module, adapter: str) -> bool:
    """Delete ``adapter`` everywhere (peft's ``delete_adapter``); modules left without
    adapters get their original module back. Returns whether the adapter was found."""
    found = layers_with(model, adapter)
    for name, layer in found.items():
        layer.delete_adapter(adapter)
        if not layer.lora_A:
            _unwrap(model, name, layer)
    config = getattr(model, "peft_config", None)
    if isinstance(config, dict):
        config.pop(adapter, None)
        if not config:
            del model.peft_config
    activate_all(model)
    return bool(found)


def merged_deltas(model: torch.nn.Module, adapter: str) -> tuple[Delta, ...]:
    """``adapter``'s change of each base weight it wraps (peft's ``B·A·scaling``), as weight
    deltas: committing the edit writes them into the base weights (the editor does, atomically
    and logged, so other edits stay exactly rollback-able) and then detaches the adapter."""
    deltas = []
    for name, layer in layers_with(model, adapter).items():
        deltas.append(Delta(param=f"{name}.weight",
                            dense=layer.get_delta_weight(adapter).detach().float()))
    return tuple(deltas)


def _unwrap(model: torch.nn.Module, name: str, layer: LoraModule) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, layer.get_base_layer())
