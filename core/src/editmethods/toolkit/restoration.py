"""Run a corrupted forward pass from a chosen block on, many times, for causal tracing.

Restoring a clean state at layer ``l`` changes nothing below ``l``: every row that restores
layers ``[lo, hi)`` shares the corrupted run up to block ``lo`` with the other rows of its
noise sample. :class:`CorruptedRun` records, once per noise sample, the input of every block
and the arguments the model passes it (attention mask, rotary embeddings, cache); a group of
restorations then starts at block ``lo`` and runs only the blocks from there, the final norm
and the LM head at the last position.

It assumes a decoder-only model whose forward pass is "embed, blocks in order, final norm,
head"; :meth:`CorruptedRun.matches` compares its baseline with a plain forward pass, and the
caller falls back to plain passes where it differs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from editmethods.architectures import Architecture, get_module
from editmethods.toolkit.tracing import first_tensor, trace

__all__ = ["CorruptedRun"]


def _is_cache(value: Any) -> bool:
    return type(value).__name__.endswith("Cache") and hasattr(value, "get_seq_length")


def _widen(value: Any, repeats: int, batch: int, cache: Any) -> Any:
    """``value`` for ``repeats`` copies of each group of ``batch`` rows; caches replaced."""
    if _is_cache(value):
        return cache
    if isinstance(value, torch.Tensor):
        if value.dim() >= 2 and value.shape[0] == batch and repeats > 1:
            return value.repeat(repeats, *([1] * (value.dim() - 1)))
        return value
    if isinstance(value, tuple):
        return tuple(_widen(v, repeats, batch, cache) for v in value)
    if isinstance(value, list):
        return [_widen(v, repeats, batch, cache) for v in value]
    if isinstance(value, dict):
        return {k: _widen(v, repeats, batch, cache) for k, v in value.items()}
    return value


class CorruptedRun:
    """The corrupted run's block inputs and block arguments, per noise sample.

    :param forward: runs the model on the corrupted input (noise added by the caller's
        hooks) for ``samples`` rows; called once, inside this object's recording hooks.
    :param prefix: the key/value cache of the tokens before the subject, or ``None``.
    """

    def __init__(self, model: torch.nn.Module, arch: Architecture, samples: int,
                 forward: Callable[[], Any], prefix: Any) -> None:
        self.model = model
        self.samples = samples
        self.prefix = prefix
        n_layers = arch.n_layers(model)
        self.blocks = [get_module(model, arch.path("layer", j)) for j in range(n_layers)]
        self.final_norm = get_module(model, arch.path("final_norm"))
        self.lm_head = get_module(model, arch.path("lm_head"))
        self.inputs: list[torch.Tensor] = []
        self.calls: list[tuple[tuple, dict]] = []

        def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            self.inputs.append(args[0].detach())
            self.calls.append((tuple(args[1:]), dict(kwargs)))

        handles = [b.register_forward_pre_hook(record, with_kwargs=True) for b in self.blocks]
        try:
            self.baseline = forward()
        finally:
            for h in handles:
                h.remove()

    @property
    def complete(self) -> bool:
        """Whether every block ran exactly once in the recorded pass."""
        return len(self.inputs) == len(self.blocks)

    def run(self, start: int, repeats: int, modules: list[str],
            patch: Callable[[str, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Last-position logits of ``repeats × samples`` rows that run from block ``start``
        on, with ``patch`` editing the outputs of ``modules`` (the restorations)."""
        rows = repeats * self.samples
        cache = None
        if self.prefix is not None:
            cache = copy.deepcopy(self.prefix)
            cache.batch_repeat_interleave(rows)
        h = self.inputs[start].repeat(repeats, 1, 1)
        with trace(self.model, modules, retain_output=False, edit_output=patch):
            for block, (args, kwargs) in zip(self.blocks[start:], self.calls[start:]):
                args = _widen(args, repeats, self.samples, cache)
                kwargs = _widen(kwargs, repeats, self.samples, cache)
                h = first_tensor(block(h, *args, **kwargs))
        return self.lm_head(self.final_norm(h[:, -1]))

    def matches(self, tolerance: float = 1e-4) -> bool:
        """Whether running every block from the recorded inputs reproduces the plain pass's
        last-position probabilities."""
        if not self.complete:
            return False
        got = torch.softmax(self.run(0, 1, [], lambda name, h: h).float(), -1)
        want = torch.softmax(self.baseline.float(), -1)
        return got.shape == want.shape and bool(
            torch.isfinite(got).all() and (got - want).abs().max() <= tolerance)
