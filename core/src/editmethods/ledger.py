"""Per-model bookkeeping that makes rollback exact and commits permanent.

The first time an edit writes a tensor, the ledger keeps a copy of the original and starts a
log of the deltas written to it, in order. Rolling back an edit rewrites each of its tensors
as the original plus the deltas that remain in the log, replayed in their order: the tensor
then holds exactly (bit for bit) what it would hold had the rolled-back edit never been
made. A committed edit's entries stay in the log, marked permanent, so that no later
rollback of another edit can undo it; once every entry left on a tensor is permanent, the
tensor itself is the new original and its log is dropped.

Every write of a set of tensors is atomic (:func:`write_tensors`): when one write fails,
the tensors already written are restored before the error propagates, so a failed edit,
rollback or commit changes nothing and can be retried.

All of an Editor's calls on one model hold the model's :attr:`Ledger.lock`, so two threads
(or two Editors sharing one model) never interleave an edit with another call.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs
import torch

from editmethods.fingerprint import model_fingerprint, tensor_hash

if TYPE_CHECKING:  # pragma: no cover
    from editmethods.types import Delta, EditHandle

__all__ = ["Entry", "Ledger", "tensor_hash", "write_tensors"]


def copy_into(param: torch.Tensor, value: torch.Tensor) -> None:
    """Write ``value`` into ``param`` in place, in the parameter's dtype and device. Every
    tensor write of an edit, rollback or commit goes through here (tests inject faults)."""
    param.data.copy_(value.to(param.device, param.dtype))


@torch.no_grad()
def write_tensors(model: torch.nn.Module, values: Mapping[str, torch.Tensor]) -> None:
    """Write each named parameter; if any write fails, restore those written, then raise."""
    saved: dict[str, torch.Tensor] = {}
    try:
        for name, value in values.items():
            param = model.get_parameter(name)
            saved[name] = param.detach().clone()
            copy_into(param, value)
    except BaseException:
        for name, old in saved.items():
            model.get_parameter(name).data.copy_(old)
        raise


def added(tensor: torch.Tensor, delta: Delta) -> torch.Tensor:
    """``tensor + delta``, summed in float32 (or wider) and cast back to the tensor's dtype:
    fp16/bf16 weights are edited by upcasting only the tensors involved."""
    change = delta.materialize().to(tensor.device)
    total = tensor.detach().to(torch.promote_types(change.dtype, torch.float32)) + change
    return total.to(tensor.dtype)


@attrs.define
class Entry:
    """One delta written to one tensor, in the order it was written."""

    edit_id: str
    delta: Delta
    committed: bool = False


class Ledger:
    """Originals, write logs and live edits of one model. Get it with :meth:`Ledger.of`."""

    _by_model: weakref.WeakKeyDictionary[torch.nn.Module, Ledger] = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex[:12]
        #: Each logged tensor as it was before the first entry of its log (on CPU).
        self.originals: dict[str, torch.Tensor] = {}
        #: The deltas written to each tensor since its original was kept, oldest first.
        self.log: dict[str, list[Entry]] = {}
        self.live: dict[str, EditHandle] = {}
        #: Held by every Editor call on this model (re-entrant).
        self.lock = threading.RLock()
        #: The model's own parameters when the ledger was made, before anything attached
        #: itself: the whole-model fingerprint is taken over these.
        self.base_names: tuple[str, ...] = ()
        #: Counts the ledger's writes (a cached fingerprint is valid while it is unchanged).
        self.version = 0
        self._fingerprint: tuple[int, str] | None = None

    @classmethod
    def of(cls, model: torch.nn.Module) -> Ledger:
        with cls._registry_lock:
            ledger = cls._by_model.get(model)
            if ledger is None:
                ledger = cls._by_model[model] = cls()
                ledger.base_names = tuple(sorted(n for n, _ in model.named_parameters()))
            return ledger

    def fingerprint(self, model: torch.nn.Module, *, cached: bool = True) -> str:
        """:func:`~editmethods.fingerprint.model_fingerprint` of the model's own parameters
        (state that attaching methods add is not part of it), cached until the next write
        through this ledger (``cached=False`` hashes the weights again)."""
        if not cached or self._fingerprint is None or self._fingerprint[0] != self.version:
            self._fingerprint = (self.version, model_fingerprint(model, self.base_names))
        return self._fingerprint[1]

    # -- writing ---------------------------------------------------------------------------
    def write(self, model: torch.nn.Module, edit_id: str, deltas: Iterable[Delta], *,
              committed: bool = False) -> None:
        """Add ``deltas`` to the model's weights, atomically, and log them under ``edit_id``.

        A permanent (``committed``) write to a tensor no live edit touches is not logged.
        """
        deltas = list(deltas)
        values: dict[str, torch.Tensor] = {}
        for delta in deltas:  # two deltas of one edit on one tensor add up in order
            current = values.get(delta.param)
            if current is None:
                current = model.get_parameter(delta.param)
            values[delta.param] = added(current, delta)
        new_originals = {}
        for name in values:
            if name not in self.originals and not (committed and name not in self.log):
                new_originals[name] = model.get_parameter(name).detach().to("cpu", copy=True)
        self.version += 1
        write_tensors(model, values)
        self.originals.update(new_originals)
        for delta in deltas:
            if delta.param in self.originals:
                self.log.setdefault(delta.param, []).append(Entry(edit_id, delta, committed))
        if committed:
            for name in values:
                if name in self.log:
                    self._fold(name, model)

    def unwrite(self, model: torch.nn.Module, edit_id: str) -> None:
        """Remove every entry of ``edit_id``: each of its tensors becomes its original plus
        the remaining entries, replayed in order. Atomic; nothing changes on failure."""
        values: dict[str, torch.Tensor] = {}
        remaining: dict[str, list[Entry]] = {}
        for name, entries in self.log.items():
            if not any(e.edit_id == edit_id for e in entries):
                continue
            if any(e.edit_id == edit_id and e.committed for e in entries):
                raise RuntimeError(f"edit {edit_id} was committed; its writes are permanent")
            keep = [e for e in entries if e.edit_id != edit_id]
            tensor = self.originals[name].to(model.get_parameter(name).device)
            for entry in keep:
                tensor = added(tensor, entry.delta)
            values[name], remaining[name] = tensor, keep
        self.version += 1
        write_tensors(model, values)
        for name, keep in remaining.items():
            self.log[name] = keep
            self._fold(name, model)

    def make_permanent(self, model: torch.nn.Module, edit_id: str) -> None:
        """Mark ``edit_id``'s entries permanent: no rollback of another edit removes them."""
        for name, entries in list(self.log.items()):
            for entry in entries:
                if entry.edit_id == edit_id:
                    entry.committed = True
            self._fold(name, model)

    def _fold(self, name: str, model: torch.nn.Module) -> None:
        # Permanent entries at the head of a log are part of the tensor's history for good:
        # fold them into its original (replayed as a rollback would, on the tensor's device,
        # so the bits agree); a log left with no entries is dropped with its original.
        entries = self.log.get(name, [])
        head = 0
        while head < len(entries) and entries[head].committed:
            head += 1
        if head == len(entries):
            self.log.pop(name, None)
            self.originals.pop(name, None)
        elif head:
            tensor = self.originals[name].to(model.get_parameter(name).device)
            for entry in entries[:head]:
                tensor = added(tensor, entry.delta)
            self.originals[name] = tensor.to("cpu")
            self.log[name] = entries[head:]

    # -- edits -----------------------------------------------------------------------------
    def add(self, handle: EditHandle) -> None:
        self.live[handle.edit_id] = handle

    def remove(self, handle: EditHandle) -> None:
        """Forget the live edit ``handle`` (its writes are handled by :meth:`unwrite` or
        :meth:`make_permanent`)."""
        self.live.pop(handle.edit_id, None)

    def writes_of(self, edit_id: str) -> list[str]:
        """Names of the tensors whose logs hold entries of ``edit_id``."""
        return [n for n, entries in self.log.items() if any(e.edit_id == edit_id for e in entries)]
