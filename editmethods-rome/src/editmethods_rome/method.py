"""ROME: locate the layer, compute k*, optimize v*, write the rank-one update.

Nothing here writes the model: the update is returned as a rank-one ``Delta`` and the core
applies it (and undoes it exactly).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from editmethods.architectures import Architecture, get_module
from editmethods.errors import EditError
from editmethods.types import EditRequest, Location, Update
from editmethods_rome.contexts import generate_prefixes
from editmethods_rome.hparams_rome import ROMEHyperParams
from editmethods_rome.keys import averaged_keys
from editmethods_rome.update import apply_module, module_stats, rank_one_delta
from editmethods_rome.values import optimize_values


def module_name(template: str | None, arch: Architecture, role: str, layer: int) -> str:
    return template.format(layer) if template else arch.path(role, layer)


def check_module_templates(model: torch.nn.Module, hp: Any, arch: Architecture, layer: int) -> None:
    """Every module template given in hparams must name a module of this model (EasyEdit's
    files carry them; a template for another architecture is a mistake worth reporting)."""
    for field in ("rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp", "attn_module_tmp"):
        tmp = getattr(hp, field, None)
        if tmp:
            get_module(model, tmp.format(layer))
    for field in ("ln_f_module", "lm_head_module"):
        name = getattr(hp, field, None)
        if name:
            get_module(model, name)
    n = arch.n_layers(model)
    if hp.v_loss_layer is not None and hp.v_loss_layer != n - 1:
        raise EditError(
            f"v_loss_layer={hp.v_loss_layer}: the loss is read from the model's logits, i.e. after "
            f"the last layer ({n - 1}); set v_loss_layer to {n - 1} or remove it"
        )


def locate_rome(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                hp: ROMEHyperParams, arch: Architecture, method: str = "rome") -> Location:
    """The layer from hparams, or from causal tracing when ``locate: causal_trace``."""
    layers: tuple[int, ...] = tuple(hp.layers)
    source = "hparams"
    if hp.locate == "causal_trace":
        layers = (_traced_layer(model, tokenizer, requests, arch, method),)
        source = "causal_trace"
    for layer in layers:
        arch.check_layer(model, layer)
    modules = tuple(module_name(hp.rewrite_module_tmp, arch, "mlp_out", layer) for layer in layers)
    return Location(layers=layers, modules=modules, info={"source": source})


def _traced_layer(model, tokenizer, requests, arch, method) -> int:
    """The layer whose MLP, restored at the subject's last token, recovers the answer most
    (the core's causal tracing, averaged over the requests)."""
    import importlib

    try:
        tracing = importlib.import_module("editmethods.causal_trace")
    except ImportError:
        raise EditError(
            f"{method}: locate='causal_trace' needs editmethods.causal_trace, which this "
            "version of editmethods does not have; give the layer in 'layers'"
        ) from None
    return int(tracing.strongest_layer(model, tokenizer, arch, list(requests), kind="mlp"))


def compute_rome_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                        hp: ROMEHyperParams, location: Location, arch: Architecture,
                        method: str = "rome") -> Update:
    if len(requests) != 1:
        raise EditError(f"{method} edits one fact at a time; got {len(requests)} requests")
    request = requests[0]
    started = time.perf_counter()
    layer = location.layers[0] if location.layers else hp.layer
    arch.check_layer(model, layer)
    check_module_templates(model, hp, arch, layer)
    rewrite = module_name(hp.rewrite_module_tmp, arch, "mlp_out", layer)
    value_module = module_name(hp.mlp_module_tmp, arch, "mlp", layer) if hp.mlp_module_tmp else rewrite
    module = get_module(model, rewrite)
    param = f"{rewrite}.weight"

    prefixes = generate_prefixes(model, tokenizer, hp.context_template_length_params,
                                 seed=hp.context_seed)
    mean_key, bare_key = averaged_keys(model, tokenizer, rewrite, [request], prefixes,
                                       hp.fact_token)
    mean_key, bare_key = mean_key[0], bare_key[0]
    if hp.mom2_adjustment:
        stats = module_stats(model, tokenizer, rewrite, hp)
        left = stats.solve(mean_key.to(stats.matrix.device), ridge=hp.mom2_ridge).float()
    else:
        left = mean_key.clone()
    left = left / left.norm().clamp_min(1e-12)

    values = optimize_values(
        model, tokenizer, [request], prefixes, module=value_module, fact_token=hp.fact_token,
        steps=hp.v_num_grad_steps, lr=hp.v_lr, weight_decay=hp.v_weight_decay,
        clamp_factor=hp.clamp_norm_factor, kl_factor=hp.kl_factor, early_stop=hp.v_early_stop,
        method=method, architecture=arch,
    )
    delta = values.delta[0]
    variant = hp.effective_variant
    if variant == "original":
        key = bare_key
        current = apply_module(module, key[None])[0].cpu()
        target = values.init[0] + delta
    else:
        key = mean_key
        current = apply_module(module, key[None])[0].cpu()
        target = values.mean_init[0] + delta
    update = rank_one_delta(module, param, left.cpu(), key.cpu(), target, current, method)
    return Update(
        method=method,
        deltas=(update,),
        meta={
            "layer": layer, "variant": variant, "v_steps": values.steps[0],
            "v_nll": values.nll[0], "delta_norm": float(delta.norm()),
            "value_norm": float(values.init[0].norm()), "n_contexts": len(prefixes),
            "seconds": round(time.perf_counter() - started, 4),
        },
    )
