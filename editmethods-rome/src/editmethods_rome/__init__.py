"""ROME for editmethods: rank-one model editing (Meng et al., NeurIPS 2022) and r-ROME.

>>> from editmethods import Editor, EditRequest                      # doctest: +SKIP
>>> editor = Editor.from_pretrained("testbed-gpt2")                  # doctest: +SKIP
>>> editor.edit(EditRequest(prompt="...", subject="...", target_new="..."), method="rome",
...             hparams=hparams_path("testbed-gpt2"))                # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from editmethods.hparams import shipped_hparams
from editmethods_rome.hparams_rome import ROMEHyperParams

HPARAMS_DIR = Path(__file__).resolve().parent / "hparams"


def hparams_path(model: str) -> Path:
    """The shipped hparams file for ``model`` (e.g. ``"gpt2-xl"``, ``"testbed-gpt2"``)."""
    return shipped_hparams(__file__, model, method="ROME")


__all__ = ["HPARAMS_DIR", "ROMEHyperParams", "hparams_path"]
