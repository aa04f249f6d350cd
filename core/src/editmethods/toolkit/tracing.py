"""Read or replace the inputs and outputs of named modules during a forward pass.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
>>> with trace(net, ["0"], retain_input=True) as rec:
...     _ = net(torch.ones(1, 2))
>>> rec["0"].input.shape, rec["0"].output.shape
(torch.Size([1, 2]), torch.Size([1, 2]))

Hooks are always removed when the block ends, also on exceptions. ``stop_after`` ends the
forward pass after a module (statistics need no logits), and the block swallows that stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import torch

from editmethods.architectures import get_module

EditFn = Callable[[str, Any], Any]


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early; swallowed by :func:`trace`."""


@attrs.define
class Record:
    """What one module saw: its first positional input and its output."""

    input: torch.Tensor | None = None
    output: Any = None


def first_tensor(value: Any) -> torch.Tensor:
    """The first tensor of a module output (attention modules return tuples)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(f"no tensor in module output of type {type(value).__name__}")


def _replace_first(value: Any, new: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return new
    return (new, *value[1:]) if isinstance(value, tuple) else [new, *value[1:]]


@contextlib.contextmanager
def trace(
    model: torch.nn.Module,
    modules: Iterable[str],
    *,
    retain_input: bool = False,
    retain_output: bool = True,
    detach: bool = True,
    edit_input: EditFn | None = None,
    edit_output: EditFn | None = None,
    stop_after: str | None = None,
) -> Iterator[dict[str, Record]]:
    """Record (and optionally replace) the input and output of ``modules``.

    :param model: the model whose submodules are traced.
    :param modules: fully qualified module names (``model.get_submodule`` names).
    :param retain_input: keep each module's first positional input.
    :param retain_output: keep each module's output (a tensor, or the tuple it returns).
    :param detach: store detached tensors (set ``False`` to keep gradients flowing).
    :param edit_input: ``fn(name, tensor) -> tensor`` replacing the first positional input.
    :param edit_output: ``fn(name, tensor) -> tensor`` replacing the output's first tensor.
    :param stop_after: end the forward pass after this module has run.
    :yields: a mapping of module name to :class:`Record`, filled during the forward pass.
    """
    names = list(dict.fromkeys(modules))
    if stop_after is not None and stop_after not in names:
        names.append(stop_after)
    records = {name: Record() for name in names}
    handles = []

    def keep(t: Any) -> Any:
        if detach and isinstance(t, torch.Tensor):
            return t.detach()
        if detach and isinstance(t, tuple):
            return tuple(x.detach() if isinstance(x, torch.Tensor) else x for x in t)
        return t

    def pre_hook(name: str) -> Callable:
        def hook(module: torch.nn.Module, args: tuple) -> tuple | None:
            if not args:
                return None
            x = args[0]
            if edit_input is not None:
                x = edit_input(name, x)
            if retain_input:
                records[name].input = keep(x)
            return (x, *args[1:]) if edit_input is not None else None

        return hook

    def post_hook(name: str) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, output: Any) -> Any:
            new_output = None
            if edit_output is not None:
                new_output = _replace_first(output, edit_output(name, first_tensor(output)))
                output = new_output
            if retain_output:
                records[name].output = keep(output)
            if name == stop_after:
                raise StopForward
            return new_output

        return hook

    try:
        for name in names:
            module = get_module(model, name)
            if retain_input or edit_input is not None:
                handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
        try:
            yield records
        except StopForward:
            pass
    finally:
        for handle in handles:
            handle.remove()
