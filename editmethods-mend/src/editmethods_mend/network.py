"""The editor network: per-weight normalization of the gradient's rank-one factors, one
low-rank, identity-initialized MLP per weight shape with per-layer scale and shift, and
learned per-weight step sizes (MEND, Mitchell et al. 2022, section 3 and eq. 2).

For a weight ``W`` with layer input ``u`` and output gradient ``δ`` at each token, the
fine-tuning gradient is ``Σ_t u_t δ_tᵀ`` (in ``[in, out]`` terms). MEND normalizes ``u_t``
and ``δ_t``, maps the concatenation ``[u_t; δ_t]`` through ``g`` to ``[ũ_t; δ̃_t]``, and
writes ``W ← W - α_W Σ_t ũ_t δ̃_tᵀ``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
import torch
from torch import nn


@attrs.frozen
class ParamSpec:
    """One edited weight: its name, its layout and its input/output sizes."""

    name: str
    #: ``"in_out"`` (GPT-2 Conv1D, ``[in, out]``) or ``"out_in"`` (``nn.Linear``).
    layout: str
    in_dim: int
    out_dim: int

    @property
    def shape_key(self) -> str:
        """Weights of the same (in, out) sizes share one editor MLP."""
        return f"in{self.in_dim}_out{self.out_dim}"


class FactorNorm(nn.Module):
    """Running per-dimension mean and variance of the ``u`` and ``δ`` factors of one weight.

    Statistics are gathered while training (Chan et al.'s parallel update, in float64) and
    frozen afterwards. With no statistics yet the factors pass through unchanged.
    """

    # the buffers registered below, declared for the type checker (register_buffer is not)
    count: torch.Tensor
    u_mean: torch.Tensor
    u_m2: torch.Tensor
    d_mean: torch.Tensor
    d_m2: torch.Tensor

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        for side, dim in (("u", in_dim), ("d", out_dim)):
            self.register_buffer(f"{side}_mean", torch.zeros(dim, dtype=torch.float64))
            self.register_buffer(f"{side}_m2", torch.zeros(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, u: torch.Tensor, d: torch.Tensor) -> None:
        n_b = u.shape[0]
        if n_b == 0:
            return
        n_a = float(self.count)
        n = n_a + n_b
        for side, x in (("u", u), ("d", d)):
            x = x.detach().double()
            mean_b = x.mean(0)
            m2_b = ((x - mean_b) ** 2).sum(0)
            mean_a, m2_a = getattr(self, f"{side}_mean"), getattr(self, f"{side}_m2")
            delta = mean_b - mean_a
            mean_a += delta * (n_b / n)
            m2_a += m2_b + delta**2 * (n_a * n_b / n)
        self.count += n_b

    def forward(self, u: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if float(self.count) < 2:
            return u, d
        out = []
        for side, x in (("u", u), ("d", d)):
            mean = getattr(self, f"{side}_mean").to(x.dtype)
            std = (getattr(self, f"{side}_m2") / (self.count - 1)).sqrt().to(x.dtype)
            out.append((x - mean) / (std + 1e-7))
        return out[0], out[1]


class LowRankResidual(nn.Module):
    """``z + act(s[mode] ⊙ (U V z + b) + o[mode])``: a residual low-rank layer with a
    per-layer (mode) scale ``s`` and shift ``o``.

    ``U`` starts at zero, so the layer starts as the identity. In the hidden (ReLU) layer an
    exactly-zero pre-activation would also have zero gradient (ReLU'(0) = 0 in torch) and
    the layer would never learn: there ``U`` starts tiny instead (std 1e-3 / rank), which
    leaves the map the identity to within ~1e-4.
    """

    def __init__(self, dim: int, rank: int, n_modes: int, relu: bool) -> None:
        super().__init__()
        self.relu = relu
        self.down = nn.Parameter(torch.randn(rank, dim) / math.sqrt(dim))
        up = torch.randn(dim, rank) * (1e-3 / rank) if relu else torch.zeros(dim, rank)
        self.up = nn.Parameter(up)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.scale = nn.Parameter(torch.ones(n_modes, dim))
        self.shift = nn.Parameter(torch.zeros(n_modes, dim))

    def forward(self, z: torch.Tensor, mode: int) -> torch.Tensor:
        h = (z @ self.down.T) @ self.up.T + self.bias
        h = self.scale[mode] * h + self.shift[mode]
        return z + (torch.relu(h) if self.relu else h)


class FactorMLP(nn.Module):
    """``g``: a hidden ReLU layer and a linear output layer, both low-rank and residual."""

    def __init__(self, dim: int, rank: int, n_modes: int) -> None:
        super().__init__()
        self.hidden = LowRankResidual(dim, rank, n_modes, relu=True)
        self.out = LowRankResidual(dim, rank, n_modes, relu=False)

    def forward(self, z: torch.Tensor, mode: int) -> torch.Tensor:
        return self.out(self.hidden(z, mode), mode)


class MENDEditor(nn.Module):
    """The editor for a set of weights.

    :param params: the weights it edits (one MLP per distinct (in, out) size; the index of a
        weight among those sharing its MLP is its mode, which selects the scale and shift).
    :param rank: rank of the low-rank layers.
    :param init_lr: the initial step size of every weight.
    """

    def __init__(self, params: Sequence[ParamSpec], rank: int, init_lr: float) -> None:
        super().__init__()
        if not params:
            raise ValueError("an editor needs at least one weight to edit")
        self.specs: tuple[ParamSpec, ...] = tuple(params)
        self.rank = rank
        counts: dict[str, int] = {}
        self._route: dict[str, tuple[int, str, int]] = {}
        for i, spec in enumerate(self.specs):
            mode = counts.get(spec.shape_key, 0)
            counts[spec.shape_key] = mode + 1
            self._route[spec.name] = (i, spec.shape_key, mode)
        self.nets = nn.ModuleDict({
            key: FactorMLP(int(key.split("_")[0][2:]) + int(key.split("_")[1][3:]), rank, n)
            for key, n in counts.items()
        })
        self.norms = nn.ModuleList(FactorNorm(s.in_dim, s.out_dim) for s in self.specs)
        #: Learned step size of each weight (MEND's per-layer edit learning rates).
        self.lrs = nn.Parameter(torch.full((len(self.specs),), float(init_lr)))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    def spec(self, name: str) -> ParamSpec:
        return self.specs[self._route[name][0]]

    def factor_norm(self, index: int) -> FactorNorm:
        """The normalization of weight ``specs[index]``'s factors."""
        return cast(FactorNorm, self.norms[index])  # nn.ModuleList's items are typed Module

    def edited_factors(self, name: str, u: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ũ, δ̃)`` for the per-token factors ``u`` ``[T, in]`` and ``d`` ``[T, out]`` of
        weight ``name``; updates the normalization statistics in training mode."""
        index, key, mode = self._route[name]
        norm = self.factor_norm(index)
        if self.training:
            norm.update(u, d)
        un, dn = norm(u.float(), d.float())
        out = self.nets[key](torch.cat([un, dn], dim=-1), mode)
        spec = self.specs[index]
        return out[:, : spec.in_dim], out[:, spec.in_dim:]

    def low_rank_update(self, name: str, u: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(left, right)`` with ``left @ right`` the change of weight ``name`` in its own
        layout: ``-α ũᵀ δ̃`` for ``[in, out]``, ``-α δ̃ᵀ ũ`` for ``[out, in]``."""
        index = self._route[name][0]
        eu, ed = self.edited_factors(name, u, d)
        step = self.lrs[index]
        if self.specs[index].layout == "in_out":
            return -step * eu.T, ed
        return -step * ed.T, eu

    def config(self) -> dict[str, Any]:
        """The JSON-serializable shape of this editor (enough to rebuild it)."""
        return {"rank": self.rank, "params": [attrs.asdict(s) for s in self.specs]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MENDEditor:
        return cls([ParamSpec(**p) for p in config["params"]], int(config["rank"]), 0.0)
