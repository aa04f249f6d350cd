"""Saved edits: safetensors for tensors, JSON for the rest, never pickle.

A saved edit is a folder with ``edit.json`` and ``tensors.safetensors``. The JSON records the
sha256 of the tensors file (a changed bit is refused) and ``base_hashes``: the sha256 of
every base tensor the edit writes or reads, and the fingerprint of the whole model it was
made on, so that re-applying it to another model (or the same one in another state), or
retargeting it at another tensor, is refused before anything is written.

Every malformed folder is refused with a :class:`SavedEditError` naming the file, the field
and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from editmethods.errors import EditmethodsError, SavedEditError
from editmethods.types import Delta, EditHandle, EditRequest, Location, PromptAnswer, Update

FORMAT = "editmethods.edit"
#: 2: ``tensors_sha256`` and non-empty ``base_hashes`` covering every written and read tensor.
FORMAT_VERSION = 2
JSON_NAME = "edit.json"
TENSORS_NAME = "tensors.safetensors"


def _request_to_dict(r: EditRequest) -> dict[str, Any]:
    return attrs.asdict(r, recurse=True)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_edit(handle: EditHandle, path: str | Path, *, model_type: str) -> Path:
    """Write ``handle`` to the folder ``path`` (created if needed). Both files are written
    to temporary names first and renamed, so a failed save leaves no half-written edit."""
    from safetensors.torch import save_file

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SavedEditError(f"cannot create the folder {folder}: {exc.strerror}; "
                             "choose a writable path") from None
    tensors = {}
    deltas = []
    for i, delta in enumerate(handle.update.deltas):
        keys = {}
        for kind, t in delta.tensors().items():
            key = f"delta.{i}.{kind}"
            tensors[key] = t.detach().to("cpu").contiguous()
            keys[kind] = key
        deltas.append({"param": delta.param, "tensors": keys})
    for key, t in handle.update.payload.items():
        tensors[f"payload.{key}"] = t.detach().to("cpu").contiguous()
    try:
        fd, tmp_tensors = tempfile.mkstemp(dir=folder, prefix=".tensors.", suffix=".tmp")
        os.close(fd)
        save_file(tensors, tmp_tensors, metadata={"format": FORMAT})
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "edit_id": handle.edit_id,
            "method": handle.method,
            "model_type": model_type,
            "hparams": handle.hparams.to_dict(),
            "requests": [_request_to_dict(r) for r in handle.requests],
            "location": {"layers": list(handle.location.layers),
                         "modules": list(handle.location.modules),
                         "info": dict(handle.location.info)},
            "deltas": deltas,
            "payload": sorted(handle.update.payload),
            "meta": dict(handle.update.meta),
            "reads": list(handle.update.reads),
            "base_hashes": dict(handle.base_hashes),
            "tensors_sha256": file_sha256(Path(tmp_tensors)),
        }
        fd, tmp_json = tempfile.mkstemp(dir=folder, prefix=".edit.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent=2))
        os.replace(tmp_tensors, folder / TENSORS_NAME)
        os.replace(tmp_json, folder / JSON_NAME)
    except OSError as exc:
        raise SavedEditError(f"cannot write the edit to {folder}: {exc}; choose a writable "
                             "path with free space") from None
    finally:
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    return folder


@attrs.frozen
class SavedEdit:
    """A saved edit read back from disk, not yet applied."""

    method: str
    model_type: str
    hparams: dict[str, Any]
    requests: tuple[EditRequest, ...]
    location: Location
    update: Update
    base_hashes: dict[str, str]


def _field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in doc:
        raise SavedEditError(f"{where}: the field {key!r} is missing; this is not a complete "
                             "saved edit (save it again with Editor.save_edit)")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise SavedEditError(f"{where}: the field {key!r} must be {names}, found "
                             f"{type(value).__name__}; the file was altered or is not a saved edit")
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SavedEditError(f"{path}: not UTF-8 text; this is not a saved edit") from None
    except json.JSONDecodeError as exc:
        raise SavedEditError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                             "this is not a saved edit, or it was altered") from None
    except OSError as exc:
        raise SavedEditError(f"{path}: cannot read it ({exc.strerror})") from None
    if not isinstance(doc, dict):
        raise SavedEditError(f"{path}: holds a JSON {type(doc).__name__}, a saved edit holds "
                             "a JSON object; this is not a saved edit")
    return doc


def read_edit(path: str | Path) -> SavedEdit:
    """Read and verify a folder written by :func:`write_edit`.

    :raises SavedEditError: a missing or malformed file or field, a tensors file whose sha256
        differs from the one recorded, or an edit without base hashes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    where = folder / JSON_NAME
    if not folder.is_dir() or not where.is_file() or not (folder / TENSORS_NAME).is_file():
        raise SavedEditError(
            f"{folder} is not a saved edit: expected {JSON_NAME} and {TENSORS_NAME} in it"
        )
    doc = _read_json(where)
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise SavedEditError(
            f"{where}: unsupported format {doc.get('format')!r} version "
            f"{doc.get('format_version')!r} (this editmethods reads {FORMAT!r} version "
            f"{FORMAT_VERSION}); re-apply the edit with the editmethods that saved it and save "
            "it again"
        )
    expected = _field(doc, "tensors_sha256", str, where)
    found = file_sha256(folder / TENSORS_NAME)
    if found != expected:
        raise SavedEditError(
            f"{folder / TENSORS_NAME}: sha256 {found[:16]}… differs from the {expected[:16]}… "
            f"recorded in {JSON_NAME}: the tensors were altered or truncated; save the edit again"
        )
    base_hashes = _field(doc, "base_hashes", dict, where)
    if not base_hashes or not all(isinstance(k, str) and isinstance(v, str)
                                  for k, v in base_hashes.items()):
        raise SavedEditError(f"{where}: 'base_hashes' is empty or malformed: the edit cannot "
                             "be tied to a base model, so it is refused; save it again")
    try:
        tensors = load_file(str(folder / TENSORS_NAME))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedEditError(f"{folder / TENSORS_NAME}: not a readable safetensors file ({exc})") from None
    method = _field(doc, "method", str, where)
    try:
        deltas = []
        for i, d in enumerate(_field(doc, "deltas", list, where)):
            if not isinstance(d, dict):
                raise SavedEditError(f"{where}: deltas[{i}] must be an object")
            keys = _field(d, "tensors", dict, where)
            if set(keys) not in ({"dense"}, {"left", "right"}):
                raise SavedEditError(f"{where}: deltas[{i}] must hold 'dense' or 'left' and "
                                     f"'right', found {sorted(keys)}: malformed; save it again")
            deltas.append(Delta(param=_field(d, "param", str, where),
                                **{kind: _tensor(tensors, key, where) for kind, key in keys.items()}))
        payload = {key: _tensor(tensors, f"payload.{key}", where)
                   for key in _field(doc, "payload", list, where)}
        update = Update(method=method, deltas=tuple(deltas), payload=payload,
                        meta=_field(doc, "meta", dict, where),
                        reads=tuple(_field(doc, "reads", list, where)))
        loc = _field(doc, "location", dict, where)
        location = Location(layers=tuple(_field(loc, "layers", list, where)),
                            modules=tuple(_field(loc, "modules", list, where)),
                            info=_field(loc, "info", dict, where))
        requests = tuple(_request_from_dict(r, where) for r in _field(doc, "requests", list, where))
    except SavedEditError:
        raise
    except (EditmethodsError, TypeError, ValueError) as exc:
        raise SavedEditError(f"{where}: malformed ({exc}); save the edit again") from None
    if not requests:
        raise SavedEditError(f"{where}: 'requests' is empty; save the edit again")
    return SavedEdit(
        method=method,
        model_type=_field(doc, "model_type", str, where),
        hparams=_field(doc, "hparams", dict, where),
        requests=requests,
        location=location,
        update=update,
        base_hashes=dict(base_hashes),
    )


def _tensor(tensors: dict[str, Any], key: Any, where: Path) -> Any:
    if not isinstance(key, str) or key not in tensors:
        raise SavedEditError(f"{where}: names tensor {key!r}, which {TENSORS_NAME} does not hold")
    return tensors[key]


def _request_from_dict(d: Any, where: Path) -> EditRequest:
    if not isinstance(d, dict):
        raise SavedEditError(f"{where}: each of 'requests' must be an object, found {type(d).__name__}")
    d = dict(d)
    for key in ("locality", "portability"):
        items = d.get(key, [])
        if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
            raise SavedEditError(f"{where}: a request's {key!r} must be a list of objects")
        d[key] = [PromptAnswer(**p) for p in items]
    return EditRequest(**d)
