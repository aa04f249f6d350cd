"""Counterfactual-model checkpoints: safetensors weights + JSON, tied to a base model.

A checkpoint folder holds the counterfactual model as ``save_pretrained`` writes it
(``config.json`` + ``model.safetensors``) and ``serac.json``: the base model's fingerprint,
the tuned scope threshold, the encoder, and how it was trained. Loading it for another base
model is refused, naming both fingerprints.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from editmethods.architectures import get_parameter
from editmethods.errors import EditmethodsError
from editmethods.fingerprint import tensor_hash
from editmethods.scoring import model_config
from editmethods.toolkit.checkpoints import bundled_checkpoint

if TYPE_CHECKING:
    from transformers import PreTrainedModel

META_NAME = "serac.json"
FORMAT = "editmethods.serac-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(EditmethodsError, RuntimeError):
    """A SERAC checkpoint is missing, malformed, or made for another base model."""


def base_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of the base model's architecture and input embeddings.

    The embeddings tie the checkpoint to one trained model (and its tokenizer's vocabulary)
    while staying stable under the weight edits other methods make to MLP layers.
    """
    config = model_config(model)
    h = hashlib.sha256(f"{config.model_type}|{getattr(config, 'num_hidden_layers', '')}|"
                       f"{getattr(config, 'hidden_size', '')}".encode())
    # a transformers model; nn.Module alone would type the method as a Tensor attribute
    embeddings = cast("PreTrainedModel", model).get_input_embeddings()
    h.update(tensor_hash(get_parameter(embeddings, "weight")).encode())
    return h.hexdigest()


def save_checkpoint(folder: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Write the counterfactual model and ``serac.json`` (``meta`` plus the format tag)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cast("PreTrainedModel", model).save_pretrained(folder, safe_serialization=True)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    (folder / META_NAME).write_text(json.dumps(doc, indent=2))
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``serac.json`` of a checkpoint folder, its format checked."""
    folder = Path(folder)
    path = folder / META_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not a SERAC checkpoint (no {META_NAME}): train one with "
            "`editmethods train serac --model MODEL --data TRAIN.json --out DIR`"
        )
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unsupported format {doc.get('format')!r} version {doc.get('format_version')!r}"
        )
    return doc


def bundled_for(fingerprint: str) -> Path | None:
    """The bundled checkpoint trained for the base model with that fingerprint, if any."""
    return bundled_checkpoint(__file__, fingerprint, marker=META_NAME, key="base_fingerprint",
                              read=read_meta)


def resolve_checkpoint(checkpoint: str | None, model: torch.nn.Module) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder for ``model`` and its metadata; refused for another base model."""
    found = base_fingerprint(model)
    if checkpoint is None:
        folder = bundled_for(found)
        if folder is None:
            raise CheckpointError(
                f"no bundled SERAC checkpoint for this base model (fingerprint {found[:16]}…): "
                "train one with `editmethods train serac --model MODEL --data TRAIN.json --out DIR` "
                "and set checkpoint: DIR, or set checkpoint: base to let the base model read edits "
                "in context"
            )
    else:
        folder = Path(checkpoint)
    meta = read_meta(folder)
    expected = meta.get("base_fingerprint")
    if expected != found:
        raise CheckpointError(
            f"{folder}: this SERAC checkpoint was trained for another base model "
            f"(checkpoint's base {str(expected)[:16]}…, this model {found[:16]}…): "
            "train one for this model with `editmethods train serac`"
        )
    return folder, meta


@functools.lru_cache(maxsize=4)
def _load(folder: str, mtime: float) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from editmethods.model_loading import LOADING_LOCK

    # bundled checkpoints are stored in float16 to stay small; compute in float32
    with LOADING_LOCK:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_counterfactual(folder: Path, device: torch.device) -> torch.nn.Module:
    """The counterfactual model of a checkpoint (loaded once per process and file version)."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no model.safetensors in the checkpoint")
    model = _load(str(folder.resolve()), weights.stat().st_mtime)
    if next(model.parameters()).device != device:
        model.to(device)
    return model
