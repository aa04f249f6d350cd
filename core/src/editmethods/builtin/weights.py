"""Writes and undoes weight deltas for every weight-writing method.

Its ``apply`` and ``rollback`` run last (``trylast``): a method that attaches state instead
of writing weights answers first in its own plugin, and this one only sees weight deltas.
Deltas are added in float32 and cast back, so fp16/bf16 models are edited by upcasting only
the tensors involved.
"""

from __future__ import annotations

import torch

from editmethods.hookspecs import hookimpl
from editmethods.ledger import Ledger


@torch.no_grad()
def add_delta(param: torch.Tensor, delta: torch.Tensor, sign: float = 1.0) -> None:
    new = param.detach().float() + sign * delta.to(param.device, torch.float32)
    param.data.copy_(new.to(param.dtype))


@hookimpl(trylast=True)
def apply(model, update, handle):
    if not update.deltas:
        return None
    for delta in update.deltas:
        add_delta(model.get_parameter(delta.param), delta.materialize())
    return model


@hookimpl(trylast=True)
def rollback(model, handle):
    if not handle.update.deltas:
        return None
    ledger = Ledger.of(model)
    with torch.no_grad():
        for delta in handle.update.deltas:
            param = model.get_parameter(delta.param)
            if ledger.is_last_touch(delta.param):
                param.data.copy_(ledger.originals[delta.param].to(param.device))
            else:
                add_delta(param, delta.materialize(), sign=-1.0)
    return True


@hookimpl(trylast=True)
def commit(model, handle):
    if not handle.update.deltas:
        return None
    return True  # the weights already hold the edit; the editor forgets the originals
