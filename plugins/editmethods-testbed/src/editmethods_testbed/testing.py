"""For quality tests of other packages: the bundled reference model, or a pytest skip.

Importing this module imports pytest; the rest of the package does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import editmethods_testbed as tb


def require_reference(arch: str = "gpt2", splits: Sequence[str] = ("test",)) -> Path:
    """The folder of the bundled ``arch`` model; skips the calling test, saying what is
    missing, when the model or one of the benchmark ``splits`` is not built."""
    try:
        path = tb.model_path(arch)
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"the testbed-{arch} reference model is not built yet: {exc}")
    for split in splits:
        if not tb.data_path(split).is_file():
            pytest.skip(f"the reference benchmark's {split} split is not built yet: {tb.data_path(split)}")
    return path
