"""The rank-one update and the statistics it needs, in the weight's own layout.

For a linear map ``v = W k`` (+ b), ROME's closed form is::

    W' = W + (v* − W k*) (C⁻¹ k*)ᵀ / (k*ᵀ C⁻¹ k*)

so that ``W' k* = v*`` while keys orthogonal to ``k*`` in the C⁻¹ metric are unaffected.
Stored as two vectors: GPT-2's Conv1D keeps ``W`` as ``[in, out]`` (the update is
``outer(C⁻¹k*, r)``), ``nn.Linear`` as ``[out, in]`` (``outer(r, C⁻¹k*)``).
"""

from __future__ import annotations

from typing import Any

import torch

from editmethods.architectures import weight_layout
from editmethods.errors import EditError
from editmethods.ledger import Ledger
from editmethods.toolkit.stats import SecondMoment, second_moment
from editmethods.types import Delta


def module_stats(model: torch.nn.Module, tokenizer: Any, module: str, hp: Any) -> SecondMoment:
    """The (cached) second moment of ``module``'s inputs, for the *unedited* model: weights
    changed by live edits are represented by their originals."""
    return second_moment(
        model, tokenizer, module, hp.mom2_dataset, n_samples=hp.mom2_n_samples,
        max_length=hp.mom2_max_length, token_budget=hp.mom2_token_budget, dtype=hp.mom2_dtype,
        original_weights=Ledger.of(model).originals,
    )


def rank_one_delta(module: torch.nn.Module, param: str, left: torch.Tensor, key: torch.Tensor,
                   target: torch.Tensor, current: torch.Tensor, method: str = "rome") -> Delta:
    """``Delta`` such that the module maps ``key`` to ``target`` (it maps it to ``current``
    now), changing the weight along the input direction ``left`` only."""
    denom = float(torch.dot(key.double(), left.double()))
    if abs(denom) < 1e-12:
        raise EditError(
            f"{method}: the key is orthogonal to its update direction (kᵀC⁻¹k ≈ 0); the "
            "model was not changed (check the statistics or use a ridge)"
        )
    right = ((target.double() - current.double()) / denom).float()
    left = left.float()
    if weight_layout(module) == "in_out":
        return Delta(param=param, left=left[:, None].contiguous(), right=right[None, :].contiguous())
    return Delta(param=param, left=right[:, None].contiguous(), right=left[None, :].contiguous())


@torch.no_grad()
def apply_module(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module applied to input vectors (``W x + b``), in float32."""
    p = next(module.parameters())
    return module(x.to(p.device, p.dtype)).float()
