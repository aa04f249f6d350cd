"""Finished benchmark runs on disk: one JSON file per (dataset, run), written atomically.

Layout under the output folder::

    runs/<dataset>/<label slug>.json     one method's run on one dataset
    runs/<dataset>/_unedited.json        the unedited model on that dataset

Each file holds the run's *key* (everything its numbers depend on: model, method, the
sha256 of the hyper-parameter file's content or of the inline mapping, overrides, the sha256
of the data file, offset, n, mode, metrics), the key's sha256, the wall time and the result
with its per-case values. A file counts as finished for a run only when its key's sha256 is
the run's; files are written to a temporary file in the same folder and moved into place
with ``os.replace``, so a run stopped half-way never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Version of the file layout; files of another version are not read.
SCHEMA = 1

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def slug(label: str) -> str:
    """A file name for a run label: ``"r-ROME"`` -> ``"r-rome"``, ``"FT L/2"`` -> ``"ft-l-2"``."""
    text = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return text or "run"


def canonical(value: Any) -> str:
    """A stable JSON text of ``value`` (sorted keys; tuples as lists; paths as strings)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's content (remembered by path, size and mtime for this process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def clean_json(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` (strict JSON has no NaN)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Strict JSON (NaN/inf as ``null``), indented, written atomically."""
    return atomic_write_text(path, json.dumps(clean_json(data), indent=1, default=str,
                                              allow_nan=False) + "\n")


class ResultStore:
    """The finished runs of one output folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_path(self, dataset: str, label: str) -> Path:
        return self.root / "runs" / slug(dataset) / f"{slug(label)}.json"

    def cases_path(self, dataset: str, label: str) -> Path:
        return self.root / "runs" / slug(dataset) / f"{slug(label)}.cases.jsonl"

    def unedited_path(self, dataset: str) -> Path:
        return self.root / "runs" / slug(dataset) / "_unedited.json"

    def read(self, path: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record at ``path`` if it is a finished run with this key, else ``None`` (missing,
        unreadable, another schema, or another key)."""
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("schema") != SCHEMA:
            return None
        if record.get("key_sha256") != key_sha256(key):
            return None
        return record

    def write(self, path: Path, key: Mapping[str, Any], **fields: Any) -> Path:
        record = {"schema": SCHEMA, "key_sha256": key_sha256(key), "key": dict(key), **fields}
        return atomic_write_json(path, record)


def key_sha256(key: Mapping[str, Any]) -> str:
    return sha256_text(canonical(key))


class CaseFile:
    """The finished cases of one unfinished run, one JSON line each, next to its result
    (``runs/<dataset>/<label>.cases.jsonl``): a run stopped half-way (a session that ends, a
    crash) resumes from its next case. The first line holds the run's key; cases of a run
    with another key are ignored and overwritten. A line cut off by a crash is ignored.

    :param path: the file.
    :param key: what the run's numbers depend on (as for :meth:`ResultStore.write`).
    """

    def __init__(self, path: str | Path, key: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.key = key_sha256(key)

    def read(self) -> dict[int, dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return {}
        try:
            head = json.loads(lines[0]) if lines else None
        except ValueError:
            return {}
        if not isinstance(head, dict) or head.get("key_sha256") != self.key:
            return {}
        cases: dict[int, dict[str, Any]] = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the last line of a run that was killed while writing it
            if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                cases[entry["index"]] = entry
        return cases

    def write(self, index: int, entry: Mapping[str, Any]) -> None:
        if not self._has_head():  # a new file, or one left by a run with another key
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps({"schema": SCHEMA, "key_sha256": self.key}) + "\n")
        line = json.dumps(clean_json({"index": index, **entry}), default=str, allow_nan=False)
        with self.path.open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _has_head(self) -> bool:
        try:
            with self.path.open() as fh:
                head = json.loads(fh.readline())
        except (OSError, ValueError):
            return False
        return isinstance(head, dict) and head.get("key_sha256") == self.key

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


__all__ = ["CaseFile", "ResultStore", "SCHEMA", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "canonical", "key_sha256", "sha256_file", "slug"]
