"""The one way this project hashes model weights.

:func:`model_fingerprint` is a sha256 over named tensors (each name, dtype, shape and bytes,
in order): of a whole model (every parameter, and its buffers when asked), or of some of its
parameters; :func:`tensor_hash` is the digest of one tensor's dtype, shape and bytes.
Statistics caches, saved edits, trained checkpoints and benchmark checks all use these, so a
digest written by one part of the project can be checked by any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import torch

__all__ = ["model_fingerprint", "named_fingerprint", "tensor_hash"]


def _bytes(t: torch.Tensor) -> bytes:
    data = t.detach().to("cpu").contiguous()
    return data.reshape(-1).view(torch.uint8).numpy().tobytes()


def tensor_hash(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (dtype and shape included)."""
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(_bytes(t))
    return h.hexdigest()


def named_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over ``(name, tensor)`` pairs, in the order given."""
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(f"{name}\x1f{t.dtype}\x1f{tuple(t.shape)}\x1e".encode())
        h.update(_bytes(t))
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module, names: Sequence[str] | None = None, *,
                      replace: Mapping[str, torch.Tensor] | None = None,
                      buffers: bool = False) -> str:
    """sha256 of a model's weights.

    :param names: the parameters to hash, in this order; every parameter (sorted by name)
        by default.
    :param replace: tensors to hash in place of the model's (e.g. the originals of weights
        that live edits changed, to fingerprint the unedited model).
    :param buffers: hash the buffers too (sorted by name, after the parameters).
    """
    replace = replace or {}
    if names is None:
        names = sorted(name for name, _ in model.named_parameters())
    pairs = [(n, replace[n] if n in replace else model.get_parameter(n)) for n in names]
    if buffers:
        pairs += sorted(model.named_buffers(), key=lambda kv: kv[0])
    return named_fingerprint(pairs)
