"""The types second-moment statistics are made of (shared by :mod:`editmethods.toolkit.stats`,
which computes them and is where to import them from, and the modules it builds on:
``model_samples`` and ``stats_import``)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import torch

from editmethods.cache import cache_root
from editmethods.errors import EditmethodsError

#: Bumped when the computation changes, so that old cache files are not reused.
FORMAT_VERSION = 1


class StatisticsError(EditmethodsError, ValueError):
    """Statistics cannot be computed or are unusable (empty corpus, singular matrix, ...)."""


def cache_dir(override: str | Path | None = None) -> Path:
    """Where statistics are cached: ``override``, else ``$EDITMETHODS_CACHE/stats``, else
    ``~/.cache/editmethods/stats``."""
    return Path(override) if override is not None else cache_root() / "stats"


@attrs.frozen
class Corpus:
    """A corpus with a stable identity (what the cache key uses) and a way to read texts."""

    identity: str
    description: str
    read: Callable[[], Iterator[str]] = attrs.field(eq=False, repr=False)

    def texts(self, n: int) -> list[str]:
        """The first ``n`` non-empty texts."""
        out: list[str] = []
        for text in self.read():
            if isinstance(text, str) and text.strip():
                out.append(text)
                if len(out) >= n:
                    break
        return out


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the tokenizer's vocabulary and its BOS/EOS ids (its class name when it has
    no vocabulary map)."""
    try:
        vocab = tokenizer.get_vocab()
    except Exception:  # tokenizers without a vocabulary map: fall back to their class
        return type(tokenizer).__name__
    blob = json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()
    extra = f"{getattr(tokenizer, 'bos_token_id', None)}/{getattr(tokenizer, 'eos_token_id', None)}"
    return hashlib.sha256(blob + extra.encode()).hexdigest()


@attrs.frozen
class SecondMoment:
    """``C = E[k kᵀ]`` of a module's inputs (uncentered), with what it was computed from."""

    module: str
    #: ``[d_in, d_in]``: sum of k kᵀ over every non-pad token, divided by their number.
    matrix: torch.Tensor = attrs.field(eq=False, repr=False)
    n_samples: int
    n_tokens: int
    key: str
    corpus: str = ""
    #: Whether this came from the on-disk cache.
    from_cache: bool = False

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def mean_diag(self) -> float:
        """``trace(C) / d``: the scale that relative ridges and λ are expressed in."""
        return float(torch.diagonal(self.matrix).double().mean())

    def rank(self, rtol: float | None = None) -> int:
        """Numerical rank (eigenvalues above ``rtol`` times the largest)."""
        eig = torch.linalg.eigvalsh(self.matrix.double().cpu())
        tol = rtol if rtol is not None else self.dim * torch.finfo(torch.float64).eps * 10
        return int((eig > tol * eig.max().clamp_min(1e-300)).sum())

    def samples_needed(self) -> int:
        """A lower bound on the samples for a full-rank C: ``d`` tokens at this corpus's
        mean tokens per sample (in practice several times more are needed)."""
        per_sample = max(self.n_tokens / max(self.n_samples, 1), 1e-9)
        return int(math.ceil(self.dim / per_sample))

    def check_full_rank(self) -> None:
        """Raise :class:`StatisticsError` when C is singular, saying how many samples are
        needed."""
        if self.n_tokens < self.dim:
            raise StatisticsError(
                f"the second moment of {self.module!r} is singular: {self.n_tokens} tokens from "
                f"{self.n_samples} samples cannot span its {self.dim} dimensions; at least "
                f"{self.samples_needed()} samples are needed (several times more in practice): "
                "raise the sample count (mom2_n_samples), or use a ridge"
            )
        r = self.rank()
        if r < self.dim:
            raise StatisticsError(
                f"the second moment of {self.module!r} is singular: rank {r} < {self.dim} at "
                f"{self.n_samples} samples ({self.n_tokens} tokens); at least "
                f"{max(self.samples_needed(), 2 * self.n_samples)} samples are needed, or, if some "
                "inputs are always zero or linearly dependent, a ridge (e.g. mom2_ridge: 0.01)"
            )

    def regularized(self, ridge: float = 0.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """``C + ridge · mean(diag C) · I`` (``ridge`` is relative, so it transfers across
        model sizes)."""
        c = self.matrix.to(dtype)
        if ridge:
            c = c + ridge * self.mean_diag() * torch.eye(self.dim, dtype=dtype, device=c.device)
        return c

    def solve(self, rhs: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
        """``(C + ridge·mean(diag C)·I)⁻¹ rhs`` in float64 (``rhs``: ``[d]`` or ``[d, n]``).

        :raises StatisticsError: when ``ridge`` is 0 and C is singular.
        """
        if not ridge:
            self.check_full_rank()
        c = self.regularized(ridge).to(rhs.device)
        vec = rhs.dim() == 1
        out = torch.linalg.solve(c, (rhs[:, None] if vec else rhs).double())
        return out[:, 0] if vec else out
