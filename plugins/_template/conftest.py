"""Lets this folder's tests import the package from ``src/`` before it is installed.

Appended, not prepended: once you ``pip install -e .``, the installed package is used.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:
    sys.path.append(_SRC)
