"""Find the checkpoint a method package ships for a base model.

Convention (the same as :func:`editmethods.hparams.shipped_hparams` for hparams files): a
method package that ships trained parts (MEND's editor networks, SERAC's counterfactual
models) keeps each one in a folder ``checkpoints/<name>/`` next to the module given as
``package_file`` (pass ``__file__``). Each folder holds a JSON file (``marker``) that records
the fingerprint of the base model it was trained for under ``key``. A checkpoint is found by
that fingerprint, never by the folder's name: a folder name says which model it was meant
for, the fingerprint says which weights it was actually trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from editmethods.errors import ArgumentError, EditmethodsError

#: Where a package keeps its shipped checkpoints, next to its module.
FOLDER = "checkpoints"


def _check_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"{name} must be a non-empty string, got {value!r}")
    return value


def shipped_checkpoints(package_file: str | Path, *, marker: str, folder: str = FOLDER) -> list[Path]:
    """The checkpoint folders a package ships, sorted by name.

    :param package_file: a module of the package (pass ``__file__``); the checkpoints are
        in ``<its folder>/<folder>/*/``.
    :param marker: the file that makes a sub-folder a checkpoint (``"config.json"``); other
        sub-folders are left out.
    :param folder: the folder next to the module that holds them.
    :return: the folders, empty when the package ships none.
    :raises ArgumentError: when ``marker`` or ``folder`` is not a non-empty string.
    """
    _check_name(marker, "marker")
    _check_name(folder, "folder")
    root = Path(package_file).resolve().parent / folder
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / marker).is_file())


def bundled_checkpoint(package_file: str | Path, fingerprint: str, *, marker: str, key: str,
                       folder: str = FOLDER,
                       read: Callable[[Path], Mapping[str, Any]] | None = None) -> Path | None:
    """The shipped checkpoint trained for the base model with ``fingerprint``, if any.

    >>> bundled_checkpoint(__file__, "0" * 64, marker="config.json", key="base_model_hash") is None
    True

    :param package_file: a module of the package (pass ``__file__``).
    :param fingerprint: the base model's fingerprint, as the package computes it.
    :param marker: the JSON file of each checkpoint that records the fingerprint.
    :param key: the field of that file that holds it (``"base_model_hash"``).
    :param folder: the folder next to the module that holds the checkpoints.
    :param read: given a checkpoint folder, returns its metadata (default: the marker file
        read as JSON); a package can pass its own reader, which checks the format too.
    :return: the first matching folder by name, or ``None``. A checkpoint whose marker file
        cannot be read (I/O error, bad JSON, or an :class:`EditmethodsError` from ``read``) is
        skipped: one damaged folder must not hide the others.
    :raises ArgumentError: when ``fingerprint``, ``marker``, ``key`` or ``folder`` is not a
        non-empty string.
    """
    _check_name(fingerprint, "fingerprint")
    _check_name(key, "key")
    def read_marker(checkpoint: Path) -> Mapping[str, Any]:
        return json.loads((checkpoint / marker).read_text())

    reader = read or read_marker
    for candidate in shipped_checkpoints(package_file, marker=marker, folder=folder):
        try:
            meta = reader(candidate)
        except (OSError, ValueError, EditmethodsError):  # ValueError covers JSONDecodeError
            continue
        if isinstance(meta, Mapping) and meta.get(key) == fingerprint:
            return candidate
    return None
