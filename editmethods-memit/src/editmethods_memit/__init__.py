"""MEMIT for editmethods: many facts at once over a range of MLP layers (Meng et al., ICLR 2023)."""

from __future__ import annotations

from pathlib import Path

from editmethods.hparams import shipped_hparams
from editmethods_memit.hparams_memit import MEMITHyperParams

HPARAMS_DIR = Path(__file__).resolve().parent / "hparams"


def hparams_path(model: str) -> Path:
    """The shipped hparams file for ``model`` (e.g. ``"gpt2-xl"``, ``"testbed-gpt2"``)."""
    return shipped_hparams(__file__, model, method="MEMIT")


__all__ = ["HPARAMS_DIR", "MEMITHyperParams", "hparams_path"]
