"""Saved edits: safetensors for tensors, JSON for the rest, never pickle.

A saved edit is a folder with ``edit.json`` and ``tensors.safetensors``. It records a sha256 of
every base tensor the edit touched, so that re-applying it to another model is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from safetensors.torch import load_file, save_file

from editmethods.errors import SavedEditError
from editmethods.types import Delta, EditHandle, EditRequest, Location, PromptAnswer, Update

FORMAT_VERSION = 1
JSON_NAME = "edit.json"
TENSORS_NAME = "tensors.safetensors"


def _request_to_dict(r: EditRequest) -> dict[str, Any]:
    return attrs.asdict(r, recurse=True)


def _request_from_dict(d: dict[str, Any]) -> EditRequest:
    d = dict(d)
    for key in ("locality", "portability"):
        d[key] = [PromptAnswer(**p) for p in d.get(key, [])]
    return EditRequest(**d)


def write_edit(handle: EditHandle, path: str | Path, *, model_type: str) -> Path:
    """Write ``handle`` to the folder ``path`` (created if needed)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
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
    doc = {
        "format": "editmethods.edit",
        "format_version": FORMAT_VERSION,
        "edit_id": handle.edit_id,
        "method": handle.method,
        "model_type": model_type,
        "hparams": handle.hparams.to_dict(),
        "requests": [_request_to_dict(r) for r in handle.requests],
        "location": {"layers": list(handle.location.layers), "modules": list(handle.location.modules),
                     "info": dict(handle.location.info)},
        "deltas": deltas,
        "payload": sorted(handle.update.payload),
        "meta": dict(handle.update.meta),
        "reads": list(handle.update.reads),
        "base_hashes": dict(handle.base_hashes),
    }
    (folder / JSON_NAME).write_text(json.dumps(doc, indent=2))
    save_file(tensors, str(folder / TENSORS_NAME), metadata={"format": "editmethods.edit"})
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


def read_edit(path: str | Path) -> SavedEdit:
    """Read a folder written by :func:`write_edit`."""
    folder = Path(path)
    if not (folder / JSON_NAME).exists() or not (folder / TENSORS_NAME).exists():
        raise SavedEditError(
            f"{folder} is not a saved edit: expected {JSON_NAME} and {TENSORS_NAME} in it"
        )
    doc = json.loads((folder / JSON_NAME).read_text())
    if doc.get("format") != "editmethods.edit" or doc.get("format_version") != FORMAT_VERSION:
        raise SavedEditError(
            f"{folder / JSON_NAME}: unsupported format {doc.get('format')!r} "
            f"version {doc.get('format_version')!r} (this editmethods reads version {FORMAT_VERSION})"
        )
    tensors = load_file(str(folder / TENSORS_NAME))
    deltas = tuple(
        Delta(param=d["param"], **{kind: tensors[key] for kind, key in d["tensors"].items()})
        for d in doc["deltas"]
    )
    payload = {key: tensors[f"payload.{key}"] for key in doc["payload"]}
    update = Update(method=doc["method"], deltas=deltas, payload=payload, meta=doc["meta"],
                    reads=doc.get("reads", []))
    loc = doc["location"]
    return SavedEdit(
        method=doc["method"],
        model_type=doc["model_type"],
        hparams=doc["hparams"],
        requests=tuple(_request_from_dict(r) for r in doc["requests"]),
        location=Location(layers=loc["layers"], modules=loc["modules"], info=loc["info"]),
        update=update,
        base_hashes=doc["base_hashes"],
    )
