"""MEMIT (Meng et al., ICLR 2023): write many facts at once over a range of MLP layers.

1. For each edit, optimize z: a vector added to the residual stream at the output of the
   *last* edit layer, at the subject's last token, so that the model continues the prompt
   (after each context prefix) with the target. The z of a batch are optimized together.
2. For each edit layer l, in order: recompute the keys (MLP inputs at the subject, averaged
   over the prefixes) on the model *as updated so far*, the residual still missing at the
   last layer, R = z − h, spread it over the remaining layers (R / (L − i)), and solve
   ``ΔW_l = R Kᵀ (λ C_l + K Kᵀ)⁻¹`` in float64.

The model is never written: updates so far act through forward hooks that add ``x ΔW`` to
each edited module's output, and the result is one dense ``Delta`` per layer, which the core
applies and undoes exactly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from editmethods.architectures import Architecture, get_module, weight_layout
from editmethods.errors import EditError
from editmethods.types import Delta, EditRequest, Location, Update
from editmethods_memit.hparams_memit import MEMITHyperParams, lambda_for
from editmethods_rome.api import (
    ValueResult,
    averaged_keys,
    check_loss_layer,
    check_module_templates,
    context_sites,
    generate_prefixes,
    memit_layers,
    module_io_at,
    module_name,
    module_stats,
    optimize_values,
    traced_layer,
    warn_chosen,
)


def memit_layers_for(model: torch.nn.Module, hp: MEMITHyperParams, arch: Architecture,
                     method: str = "memit", warn: bool = True) -> tuple[int, ...]:
    """The layers from hparams, or, when hparams set none, the window the model's depth
    gives (:func:`editmethods_rome.api.memit_layers`, with a warning saying how to set it)."""
    if hp.layers is not None:
        return tuple(hp.layers)
    n = arch.n_layers(model)
    chosen = memit_layers(n)
    if warn:
        warn_chosen(method, chosen, n)
    return chosen


def locate_memit(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                 hp: MEMITHyperParams, arch: Architecture, method: str = "memit") -> Location:
    """The layers from hparams, or from the model's depth when hparams set none; with
    ``locate: causal_trace``, as many layers (the depth rule's width when unset) ending at the
    layer that causal tracing finds strongest."""
    source = "hparams" if hp.layers is not None else "depth"
    if hp.locate == "causal_trace":
        width = len(memit_layers_for(model, hp, arch, method, warn=False))
        top = traced_layer(model, tokenizer, requests, arch, method)
        layers = tuple(range(max(0, top - width + 1), top + 1))
        source = "causal_trace"
    else:
        layers = memit_layers_for(model, hp, arch, method)
    for layer in layers:
        arch.check_layer(model, layer)
    modules = tuple(module_name(hp.rewrite_module_tmp, arch, "mlp_out", layer) for layer in layers)
    return Location(layers=layers, modules=modules, info={"source": source})


@contextlib.contextmanager
def added_updates(model: torch.nn.Module, updates: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """While active, each module in ``updates`` (read live, so entries added later count)
    outputs ``f(x) + x @ U`` (``U``: ``[d_in, d_out]``), as if its weight held the update."""
    handles = []

    def hook(name: str):
        def fn(module, args, output):
            if name not in updates:
                return None
            x = args[0]
            u = updates[name]
            return output + (x.to(u.dtype) @ u).to(output.dtype)

        return fn

    try:
        for name in dict.fromkeys([*getattr(updates, "planned", []), *updates]):
            handles.append(get_module(model, name).register_forward_hook(hook(name)))
        yield
    finally:
        for h in handles:
            h.remove()


class _Planned(dict):
    """A dict of updates that also knows which modules will get one (hooks are registered
    up front; a module without an entry yet passes through unchanged)."""

    def __init__(self, planned: Sequence[str]) -> None:
        super().__init__()
        self.planned = list(planned)


def compute_zs(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
               prefixes: Sequence[str], hp: MEMITHyperParams, z_module: str,
               method: str = "memit", architecture: Architecture | None = None) -> ValueResult:
    """Optimize z for every request: ``z_batch_size`` edits per forward/backward pass, or one
    at a time with ``z_mode: sequential``."""
    size = 1 if hp.z_mode == "sequential" else hp.z_batch_size
    parts = []
    chunks = range(0, len(requests), size)
    for start in tqdm(chunks, desc=f"{method} z", disable=len(chunks) < 2, unit="batch"):
        parts.append(optimize_values(
            model, tokenizer, requests[start : start + size], prefixes, module=z_module,
            fact_token=hp.fact_token, steps=hp.v_num_grad_steps, lr=hp.v_lr,
            weight_decay=hp.v_weight_decay, clamp_factor=hp.clamp_norm_factor,
            kl_factor=hp.kl_factor, early_stop=hp.v_early_stop, method=method,
            architecture=architecture,
        ))
    return ValueResult(
        init=torch.cat([p.init for p in parts]), mean_init=torch.cat([p.mean_init for p in parts]),
        delta=torch.cat([p.delta for p in parts]),
        steps=tuple(s for p in parts for s in p.steps), nll=tuple(x for p in parts for x in p.nll),
    )


def compute_memit_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                         hp: MEMITHyperParams, location: Location, arch: Architecture,
                         method: str = "memit") -> Update:
    started = time.perf_counter()
    layers = tuple(location.layers) if location.layers else memit_layers_for(model, hp, arch, method)
    for layer in layers:
        arch.check_layer(model, layer)
        check_module_templates(model, hp, arch, layer)
    check_loss_layer(model, hp, arch, method)
    subjects: dict[tuple[str, str], str] = {}
    for r in requests:  # one subject with two different new facts in a batch is ambiguous
        key = (r.prompt, r.subject)
        if key in subjects and subjects[key] != r.target_new:
            raise EditError(
                f"{method}: the batch asks for two targets ({subjects[key]!r}, {r.target_new!r}) "
                f"for the same prompt {r.prompt!r}; edit them in separate batches"
            )
        subjects[key] = r.target_new
    z_layer = layers[-1]
    z_module = module_name(hp.layer_module_tmp, arch, "layer", z_layer)
    rewrite = {layer: module_name(hp.rewrite_module_tmp, arch, "mlp_out", layer) for layer in layers}

    prefixes = generate_prefixes(model, tokenizer, hp.context_template_length_params,
                                 starts=hp.context_template_starts, seed=hp.context_seed)
    # statistics first, on the model without any hook (cached on disk across calls)
    stats = {layer: module_stats(model, tokenizer, rewrite[layer], hp) for layer in layers} \
        if hp.mom2_adjustment else {}
    t_stats = time.perf_counter()
    values = compute_zs(model, tokenizer, requests, prefixes, hp, z_module, method, arch)
    t_z = time.perf_counter()
    zs = values.init + values.delta  # [n, d]

    bare_texts, bare_idx = [], []
    for r in requests:
        texts, idx = context_sites(tokenizer, r.prompt, r.subject, [""], hp.fact_token)
        bare_texts += texts
        bare_idx += idx

    updates = _Planned([rewrite[layer] for layer in layers])
    with added_updates(model, updates):
        for i, layer in enumerate(layers):
            name = rewrite[layer]
            keys, _ = averaged_keys(model, tokenizer, name, requests, prefixes, hp.fact_token)
            _, cur = module_io_at(model, tokenizer, z_module, bare_texts, bare_idx)
            resid = (zs.to(cur.device) - cur).double() / (len(layers) - i)  # [n, d]
            K = keys.double().T  # [d_in, n]
            d_in = K.shape[0]
            lam = lambda_for(hp, d_in, method)
            if hp.mom2_adjustment:
                C = stats[layer].regularized(hp.mom2_ridge).to(K.device)
            else:
                C = torch.eye(d_in, dtype=torch.float64, device=K.device)
            A = lam * C + K @ K.T
            try:
                adj = torch.linalg.solve(A, K)  # [d_in, n]
            except RuntimeError as exc:
                raise EditError(
                    f"{method}: λC + KKᵀ is singular at layer {layer} ({exc}); the model was not "
                    "changed: raise mom2_n_samples or set mom2_ridge (e.g. 0.01)"
                ) from None
            upd = (adj @ resid).float()  # [d_in, d]: x @ upd adds R Kᵀ(...)⁻¹ x
            if not bool(torch.isfinite(upd).all()):
                raise EditError(f"{method}: the update of layer {layer} is NaN/inf; the model "
                                "was not changed")
            updates[name] = upd
    deltas = []
    for layer in layers:
        name = rewrite[layer]
        upd = updates[name]
        dense = upd if weight_layout(get_module(model, name)) == "in_out" else upd.T.contiguous()
        deltas.append(Delta(param=f"{name}.weight", dense=dense.cpu()))
    return Update(
        method=method, deltas=tuple(deltas),
        meta={
            "layers": list(layers), "n_edits": len(requests), "z_mode": hp.z_mode,
            "z_steps_mean": sum(values.steps) / len(values.steps),
            "z_nll_max": max(values.nll),
            "seconds_stats": round(t_stats - started, 4), "seconds_z": round(t_z - t_stats, 4),
            "seconds": round(time.perf_counter() - started, 4),
        },
    )
