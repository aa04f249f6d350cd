"""Re-run only what a vector added at one layer and one position can change.

The value optimization of ROME (v*) and MEMIT (z) adds δ to the output of one module of
layer L at one position per row (the subject's last token) and reads log-probabilities at a
few later positions. Everything below layer L, and every position before the δ position at
every layer, is the same at every step. This runner computes those once, without gradients:

1. Rows are left-aligned on the δ position ``P`` (left padding, explicit position ids), so
   columns ``[0, P)`` precede δ in every row.
2. One pass over columns ``[0, P)`` fills a key/value cache of every layer.
3. One pass over the remaining columns records the residual stream after layer L and the
   keyword arguments the model gives block L+1 (attention mask, rotary embeddings, cache),
   then stops.

A step then adds δ to that residual stream at column ``P``, runs blocks L+1… over the columns
from ``P`` on against the cached keys/values, and applies the final norm and the LM head
only at the scored positions: no lower layers, no earlier positions, no full-vocabulary
logits at every position.

It relies on the block being called as ``block(hidden, *args, **kwargs)`` and its output
being added to the residual stream, which holds for the decoder-only transformers the
architecture table knows. :func:`equivalent` checks it once per model against a plain
forward pass with a random δ; a model where it does not hold (logit scaling, soft-capping,
post-norm blocks) falls back to the plain pass.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from editmethods.architectures import Architecture, get_module
from editmethods.scoring import model_config
from editmethods.toolkit.tracing import StopForward, first_tensor, trace

__all__ = ["UpperPass", "block_of", "equivalent"]

#: Per model: whether the runner reproduced a plain forward pass (checked once per
#: :func:`_signature`).
_verdicts: weakref.WeakKeyDictionary[torch.nn.Module, tuple[Any, bool]] = \
    weakref.WeakKeyDictionary()


def _signature(model: torch.nn.Module) -> tuple:
    """What would make a verdict stale: hooks or a replaced ``forward`` on the model itself
    (an attaching method wrapping the model), which the runner does not go through."""
    return (id(getattr(model.forward, "__func__", model.forward)), len(model._forward_hooks),
            len(model._forward_pre_hooks))


def block_of(arch: Architecture, model: torch.nn.Module, module: str) -> int | None:
    """The index of the transformer block that contains ``module``, or ``None``."""
    for layer in range(arch.n_layers(model)):
        prefix = arch.path("layer", layer)
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _take(value: Any, index: torch.Tensor, batch: int) -> Any:
    """``value`` restricted to the rows ``index`` where it has a batch dimension."""
    if isinstance(value, torch.Tensor):
        return value[index] if value.dim() >= 2 and value.shape[0] == batch else value
    if isinstance(value, tuple):
        return tuple(_take(v, index, batch) for v in value)
    if isinstance(value, list):
        return [_take(v, index, batch) for v in value]
    if isinstance(value, dict):
        return {k: _take(v, index, batch) for k, v in value.items()}
    return value


class UpperPass:
    """The cached lower part of a batch of rows, and the upper part run on demand.

    Build with :meth:`build` (returns ``None`` where the model does not fit the pattern).

    :ivar init: ``[rows, d]`` the module's output at each row's δ position (unedited).
    """

    def __init__(self, *, blocks: Sequence[torch.nn.Module], final_norm: torch.nn.Module,
                 lm_head: torch.nn.Module, hidden: torch.Tensor, args: tuple, kwargs: dict,
                 cache: Any, cached: dict[int, tuple[torch.Tensor, torch.Tensor] | None],
                 pos: torch.Tensor, init: torch.Tensor) -> None:
        self.blocks = list(blocks)
        self.final_norm = final_norm
        self.lm_head = lm_head
        self.hidden = hidden
        self.args = args
        self.kwargs = kwargs
        self.cache = cache
        self.cached = cached
        self.pos = pos
        self.init = init

    @classmethod
    @torch.no_grad()
    def build(cls, model: torch.nn.Module, arch: Architecture, module: str,
              rows: Sequence[Sequence[int]], positions: Sequence[int],
              pad: int) -> UpperPass | None:
        """Run the shared lower part for ``rows`` (token ids) with δ at ``positions``."""
        if getattr(model.config, "is_encoder_decoder", False):
            return None
        layer = block_of(arch, model, module)
        if layer is None:
            return None
        try:
            from transformers import DynamicCache
        except ImportError:  # pragma: no cover - transformers is a dependency
            return None
        device = next(model.parameters()).device
        n_layers = arch.n_layers(model)
        width_before = max(positions)
        width_after = max(len(r) - p for r, p in zip(rows, positions))
        width = width_before + width_after
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        position_ids = torch.zeros_like(ids)
        for i, (row, p) in enumerate(zip(rows, positions)):
            off = width_before - p
            ids[i, off: off + len(row)] = torch.tensor(list(row), dtype=torch.long)
            mask[i, off: off + len(row)] = 1
            position_ids[i, off: off + len(row)] = torch.arange(len(row))
        ids, mask, position_ids = ids.to(device), mask.to(device), position_ids.to(device)
        cache = DynamicCache(config=model_config(model))
        last = arch.path("layer", n_layers - 1)
        if width_before:
            with trace(model, [last], retain_output=False, stop_after=last):
                model(input_ids=ids[:, :width_before], attention_mask=mask[:, :width_before],
                      position_ids=position_ids[:, :width_before], past_key_values=cache,
                      use_cache=True)
        # the input of block L+1 (or of the final norm) is the residual stream after block L
        upper = [get_module(model, arch.path("layer", j)) for j in range(layer + 1, n_layers)]
        final_norm = get_module(model, arch.path("final_norm"))
        stop_at = upper[0] if upper else final_norm
        seen: dict[str, Any] = {}

        def capture(mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            seen["args"], seen["kwargs"] = args, kwargs
            raise StopForward

        handle = stop_at.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with trace(model, [module]) as rec:
                try:
                    model(input_ids=ids[:, width_before:], attention_mask=mask,
                          position_ids=position_ids[:, width_before:], past_key_values=cache,
                          use_cache=True)
                except StopForward:
                    pass
        finally:
            handle.remove()
        if "args" not in seen or not seen["args"]:
            return None
        args, kwargs = seen["args"], dict(seen["kwargs"])
        hidden = args[0]
        init = first_tensor(rec[module].output)[:, 0].float().clone()
        layers = getattr(cache, "layers", None)
        if layers is None or len(layers) < n_layers:
            return None
        # per upper layer: its keys and values over the shared prefix, None without a prefix
        cached: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}
        for j in range(layer + 1, n_layers):
            keys = getattr(layers[j], "keys", None)
            if width_before and (keys is None or keys.shape[-2] != width_before):
                return None
            cached[j] = None if keys is None else (keys, layers[j].values)
        return cls(blocks=upper, final_norm=final_norm,
                   lm_head=get_module(model, arch.path("lm_head")), hidden=hidden,
                   args=tuple(args[1:]), kwargs=kwargs, cache=cache, cached=cached,
                   pos=torch.tensor(list(positions), device=device), init=init)

    def logits(self, sel: torch.Tensor, delta_rows: torch.Tensor,
               sites: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Logits at ``sites`` with ``delta_rows[i]`` added at row ``sel[i]``'s δ position.

        :param sel: indices of the rows to run (into the rows given to :meth:`build`).
        :param delta_rows: ``[len(sel), d]``; gradients flow back to it.
        :param sites: ``(k, position)`` pairs of index tensors: ``k`` into ``sel``,
            ``position`` in the row's own (unpadded) coordinates, at or after its δ position.
        """
        n = self.hidden.shape[0]
        full = len(sel) == n and bool((sel == torch.arange(n, device=sel.device)).all())
        hidden = self.hidden if full else self.hidden[sel]
        args = self.args if full else _take(self.args, sel, n)
        kwargs = self.kwargs if full else _take(self.kwargs, sel, n)
        h = hidden.clone()
        h[:, 0] = h[:, 0] + delta_rows.to(h.dtype)
        for j, block in zip(sorted(self.cached), self.blocks):
            prefix = self.cached[j]
            layer = self.cache.layers[j]
            if prefix is not None:  # reset to the shared prefix: the step appends to it
                keys, values = prefix
                layer.keys, layer.values = (keys, values) if full else (keys[sel], values[sel])
            else:
                layer.keys = layer.values = None
                layer.is_initialized = False
            h = first_tensor(block(h, *args, **kwargs))
        h = self.final_norm(h)
        pos = self.pos[sel]
        return [self.lm_head(h[k, p - pos[k]]) for k, p in sites]


def equivalent(model: torch.nn.Module, fast: Callable[[torch.Tensor], list[torch.Tensor]],
               plain: Callable[[torch.Tensor], list[torch.Tensor]], delta: torch.Tensor) -> bool:
    """Whether the runner gives a plain forward pass's logits for ``delta`` (once per model:
    the verdict is remembered for the model object)."""
    signature = _signature(model)
    if model in _verdicts and _verdicts[model][0] == signature:
        return _verdicts[model][1]
    with torch.no_grad():
        got, want = fast(delta), plain(delta)
    ok = all(g.shape == w.shape and bool(torch.isfinite(g).all()) for g, w in zip(got, want))
    if ok:
        tol = 1e-3 if want[0].dtype == torch.float32 else 3e-2
        for g, w in zip(got, want):
            scale = 1.0 + float(w.abs().max()) if w.numel() else 1.0
            if w.numel() and float((g.float() - w.float()).abs().max()) > tol * scale:
                ok = False
    _verdicts[model] = (signature, ok)
    return ok
