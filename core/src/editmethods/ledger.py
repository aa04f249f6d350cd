"""Per-model bookkeeping that makes rollback exact.

The first time an edit writes a tensor, the ledger keeps a copy of the original. Rolling back
the last live edit on a tensor copies that original back (bit for bit); rolling back an edit
while others still touch the same tensor subtracts its delta instead.
"""

from __future__ import annotations

import hashlib
import uuid
import weakref
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from editmethods.types import EditHandle


def tensor_hash(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (dtype and shape included)."""
    data = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    h.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Ledger:
    """Originals and live edits of one model. Get it with :meth:`Ledger.of`."""

    _by_model: "weakref.WeakKeyDictionary[torch.nn.Module, Ledger]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex[:12]
        self.originals: dict[str, torch.Tensor] = {}
        self.touches: dict[str, int] = {}
        self.live: dict[str, EditHandle] = {}

    @classmethod
    def of(cls, model: torch.nn.Module) -> "Ledger":
        ledger = cls._by_model.get(model)
        if ledger is None:
            ledger = cls._by_model[model] = cls()
        return ledger

    def keep_originals(self, model: torch.nn.Module, params: tuple[str, ...]) -> None:
        for name in params:
            if name not in self.originals:
                self.originals[name] = model.get_parameter(name).detach().to("cpu", copy=True)

    def add(self, handle: EditHandle) -> None:
        for name in handle.update.params:
            self.touches[name] = self.touches.get(name, 0) + 1
        self.live[handle.edit_id] = handle

    def remove(self, handle: EditHandle, *, keep_weights: bool = False) -> None:
        """Forget ``handle``; originals of tensors no edit touches any more are dropped."""
        self.live.pop(handle.edit_id, None)
        for name in handle.update.params:
            self.touches[name] -= 1
            if self.touches[name] == 0:
                del self.touches[name]
                self.originals.pop(name, None)

    def is_last_touch(self, name: str) -> bool:
        return self.touches.get(name, 0) == 1
