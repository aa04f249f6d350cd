"""Saving and restoring every module's train/eval flag.

``model.train(was_training)`` after a temporary ``model.eval()`` sets *every* submodule to
one mode; a model whose submodules were in different modes (a frozen, eval-mode encoder
inside a model being trained) would come back changed. These keep each module's own flag.
"""

from __future__ import annotations

import torch

__all__ = ["restore_training_modes", "training_modes"]


def training_modes(model: torch.nn.Module) -> dict[torch.nn.Module, bool]:
    """Each module's ``training`` flag, for :func:`restore_training_modes`."""
    return {m: m.training for m in model.modules()}


def restore_training_modes(modes: dict[torch.nn.Module, bool]) -> None:
    """Put back the flags :func:`training_modes` read (modules added since are left alone)."""
    for module, training in modes.items():
        module.training = training
