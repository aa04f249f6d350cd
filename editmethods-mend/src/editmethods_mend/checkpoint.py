"""Editor checkpoints: ``editor.safetensors`` (weights, normalization statistics, step
sizes) and ``config.json`` (shape, the base model's hash, how it was trained).

A checkpoint is tied to the base model it was trained on by :func:`model_hash`, a sha256
over every parameter of the model as it was before any live edit (the core's ledger keeps
the originals of edited tensors), so a checkpoint is refused on any other model.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from editmethods.errors import EditError
from editmethods.fingerprint import model_fingerprint
from editmethods.ledger import Ledger
from editmethods.toolkit.checkpoints import bundled_checkpoint, shipped_checkpoints
from editmethods_mend.network import MENDEditor

WEIGHTS = "editor.safetensors"
CONFIG = "config.json"
FORMAT = "editmethods-mend/1"

_hash_cache: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_editor_cache: dict[tuple[str, float], tuple[MENDEditor, dict[str, Any]]] = {}


def model_hash(model: torch.nn.Module) -> str:
    """The base model's fingerprint (:func:`editmethods.fingerprint.model_fingerprint` of
    its own parameters, not of attached adapters).

    Tensors that live edits have changed are hashed as they were before those edits.
    Computed once per model object and cached (edits go through the ledger, so the base
    does not change under it).
    """
    cached = _hash_cache.get(model)
    if cached is not None:
        return cached
    ledger = Ledger.of(model)
    digest = model_fingerprint(model, ledger.base_names, replace=ledger.originals)
    _hash_cache[model] = digest
    return digest


def save_editor(editor: MENDEditor, folder: str | Path, *, base_hash: str, model_type: str,
                extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``editor`` to ``folder`` (created if needed) as safetensors + JSON."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in editor.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS))
    config = {"format": FORMAT, "base_model_hash": base_hash, "model_type": model_type,
              **editor.config(), **dict(extra or {})}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise EditError(
            f"mend: {folder} is not an editor checkpoint (it needs {CONFIG} and {WEIGHTS}); "
            "train one with `editmethods train mend --model ... --data ... --out FOLDER`"
        )
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise EditError(f"mend: {path} has format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def load_editor(folder: str | Path) -> tuple[MENDEditor, dict[str, Any]]:
    """The editor stored in ``folder`` (in eval mode) and its config; cached by path and
    modification time, so repeated edits do not re-read the file."""
    from safetensors.torch import load_file

    folder = Path(folder).resolve()
    key = (str(folder), (folder / WEIGHTS).stat().st_mtime if (folder / WEIGHTS).exists() else 0.0)
    if key in _editor_cache:
        return _editor_cache[key]
    config = read_config(folder)
    editor = MENDEditor.from_config(config)
    state = load_file(str(folder / WEIGHTS))
    missing = set(editor.state_dict()) ^ set(state)
    if missing:
        raise EditError(f"mend: {folder / WEIGHTS} does not match its config (tensors {sorted(missing)[:4]})")
    editor.load_state_dict(state)
    editor.eval().requires_grad_(False)
    _editor_cache[key] = (editor, config)
    return editor, config


def bundled_folders() -> list[Path]:
    """The editor checkpoints shipped inside this package."""
    return shipped_checkpoints(__file__, marker=CONFIG)


def find_bundled(base_hash: str) -> Path | None:
    """The bundled checkpoint trained for the model with ``base_hash``, if any."""
    return bundled_checkpoint(__file__, base_hash, marker=CONFIG, key="base_model_hash")


def check_base(config: Mapping[str, Any], folder: Path, model: torch.nn.Module) -> None:
    """Refuse an editor trained for another base model, showing both hashes."""
    trained_for = config.get("base_model_hash")
    this = model_hash(model)
    if trained_for != this:
        raise EditError(
            f"mend: the editor checkpoint {folder} was trained for another base model "
            f"(checkpoint base_model_hash {trained_for}, this model's hash {this}); "
            "train an editor for this model with `editmethods train mend --model ... --data ...`"
        )
