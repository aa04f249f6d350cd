"""ROME: locate the layer, compute k*, optimize v*, write the rank-one update.

Nothing here writes the model: the update is returned as a rank-one ``Delta`` and the core
applies it (and undoes it exactly).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from editmethods.architectures import Architecture, get_module
from editmethods.errors import EditError
from editmethods.types import EditRequest, Location, Update
from editmethods_rome.contexts import generate_prefixes
from editmethods_rome.depth import rome_layer, warn_chosen
from editmethods_rome.hparams_rome import ROMEHyperParams
from editmethods_rome.keys import averaged_keys
from editmethods_rome.update import apply_module, module_stats, rank_one_delta
from editmethods_rome.values import optimize_values


def module_name(template: str | None, arch: Architecture, role: str, layer: int) -> str:
    """The module an edit writes at ``layer``: the hparams template (``transformer.h.{}.mlp.c_proj``)
    when given, else the architecture's path for ``role``."""
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


def check_loss_layer(model: torch.nn.Module, hp: Any, arch: Architecture, method: str) -> None:
    """``v_loss_layer`` other than this model's last layer only warns: the loss is read from
    the logits whatever it says, and files written for another model (EasyEdit's set it for
    their model's depth) should load and run as they are."""
    n = arch.n_layers(model)
    if hp.v_loss_layer is not None and hp.v_loss_layer != n - 1:
        warnings.warn(
            f"{method}: v_loss_layer={hp.v_loss_layer} is not this model's last layer ({n - 1}); "
            f"the loss is read from the logits, i.e. after layer {n - 1}, whatever it says (a "
            f"file written for another model, whose last layer is {hp.v_loss_layer}?). Set "
            f"v_loss_layer to "
            f"{n - 1} or remove it to silence this warning",
            stacklevel=3,
        )


def rome_layers(model: torch.nn.Module, hp: ROMEHyperParams, arch: Architecture,
                method: str = "rome") -> tuple[int, ...]:
    """The layer from hparams, or, when hparams set none, the one the model's depth gives
    (:func:`editmethods_rome.depth.rome_layer`, with a warning saying how to set it)."""
    if hp.layers is not None:
        return tuple(hp.layers)
    n = arch.n_layers(model)
    chosen = (rome_layer(n),)
    warn_chosen(method, chosen, n)
    return chosen


def locate_rome(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                hp: ROMEHyperParams, arch: Architecture, method: str = "rome") -> Location:
    """The layer from hparams, from causal tracing when ``locate: causal_trace``, or from
    the model's depth when hparams set no ``layers``."""
    if hp.locate == "causal_trace":
        layers: tuple[int, ...] = (traced_layer(model, tokenizer, requests, arch, method),)
        source = "causal_trace"
    else:
        source = "hparams" if hp.layers is not None else "depth"
        layers = rome_layers(model, hp, arch, method)
    for layer in layers:
        arch.check_layer(model, layer)
    modules = tuple(module_name(hp.rewrite_module_tmp, arch, "mlp_out", layer) for layer in layers)
    return Location(layers=layers, modules=modules, info={"source": source})


def traced_layer(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                 arch: Architecture, method: str) -> int:
    """The layer whose MLP, restored at the subject's last token, recovers the answer most
    (the core's causal tracing, averaged over the requests): ``locate: causal_trace`` of ROME
    and MEMIT.

    :param method: the method's name, for the error message.
    :raises EditError: when this version of the core has no causal tracing.
    """
    import importlib

    try:
        tracing = importlib.import_module("editmethods.toolkit.causal_trace")
    except ImportError:
        raise EditError(
            f"{method}: locate='causal_trace' needs editmethods.toolkit.causal_trace, which this "
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
    layer = location.layers[0] if location.layers else rome_layers(model, hp, arch, method)[0]
    arch.check_layer(model, layer)
    check_module_templates(model, hp, arch, layer)
    check_loss_layer(model, hp, arch, method)
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
