"""The one folder editmethods caches things in: ``$EDITMETHODS_CACHE``, else
``~/.cache/editmethods``. Each kind of cache is a sub-folder (``stats/``, ``models/``)."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the cache root.
CACHE_ENV = "EDITMETHODS_CACHE"


def cache_root() -> Path:
    """``$EDITMETHODS_CACHE`` when set and not empty, else ``~/.cache/editmethods``.

    Read at each call (not at import), so that a test or a process can point it elsewhere.
    """
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "editmethods"
