"""SERAC (Mitchell et al., ICML 2022): an edit memory, a scope classifier, a counterfactual model.

``compute_update`` embeds each edit for the scope classifier (:mod:`editmethods_serac.scope`:
learned, or cosine similarity) and names the counterfactual model; ``apply`` adds the edits to the model's memory and hooks its forward so that inputs in
an edit's scope are answered by the counterfactual model given ``New Fact: {edit}\\nPrompt:
{input}`` (logits aligned to the caller's positions, see :mod:`editmethods.toolkit.routing`),
while all other inputs get exactly the base model's logits. ``rollback`` removes the edit
from memory; the hooks go with the last edit. The base weights are never written.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from editmethods.errors import EditError
from editmethods.scoring import model_config
from editmethods.toolkit.encoder import get_encoder
from editmethods.toolkit.routing import ContextRouter, Route, edit_context
from editmethods.types import EditHandle, EditRequest, Update
from editmethods_serac.checkpoint import base_fingerprint, load_counterfactual, resolve_checkpoint
from editmethods_serac.hparams_serac import SERACHyperParams
from editmethods_serac.scope import LEARNED_THRESHOLD, SCOPE_FILE, CosineScope, LearnedScope

METHOD = "serac"
SELF = "base"
DEFAULT_THRESHOLD = 0.75


def edit_descriptor(prompt: str, target: str) -> str:
    """The text the scope classifier compares inputs with."""
    return f"{prompt} {target.strip()}"


def _check_model(model: torch.nn.Module) -> None:
    config = model_config(model)
    if getattr(config, "is_encoder_decoder", False):
        raise EditError(f"{METHOD} supports decoder-only models; {config.model_type!r} "
                        "is an encoder-decoder")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def counterfactual_for(checkpoint: str | None, model: torch.nn.Module) -> tuple[Any, dict[str, Any]]:
    """(counterfactual model or None for the base model itself, checkpoint metadata)."""
    if checkpoint == SELF:
        return None, {}
    folder, meta = resolve_checkpoint(checkpoint, model)
    return load_counterfactual(folder, _device(model)), {**meta, "folder": str(folder)}


def compute_serac_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                         hp: SERACHyperParams) -> Update:
    _check_model(model)
    _, ck = counterfactual_for(hp.checkpoint, model)
    learned_file = (ck.get("scope_classifier") or {}).get("file")
    kind = hp.classifier or ("learned" if learned_file else "cosine")
    if kind == "learned" and not learned_file:
        raise EditError(
            f"{METHOD}: classifier 'learned' needs a checkpoint trained with one (editmethods "
            f"train serac); {hp.checkpoint or 'this checkpoint'!s} has none: use classifier: cosine"
        )
    if hp.threshold is not None:
        threshold = hp.threshold
    elif kind == "learned":
        threshold = float(ck["scope_classifier"].get("threshold", LEARNED_THRESHOLD))
    else:
        threshold = ck.get("threshold", DEFAULT_THRESHOLD)
    if ck and hp.encoder != ck.get("encoder_name", hp.encoder):
        raise EditError(
            f"{METHOD}: the checkpoint's scope classifier was fitted with encoder "
            f"{ck.get('encoder_name')!r}, hparams ask for {hp.encoder!r}: use that encoder"
        )
    encoder = get_encoder(hp.encoder)
    descriptors = [edit_descriptor(r.prompt, r.target_new) for r in requests]
    emb = encoder.encode(descriptors)
    entries = [{"prompt": r.prompt, "subject": r.subject, "target_new": r.target_new.strip(),
                "context": edit_context(r.prompt, r.target_new), "descriptor": d}
               for r, d in zip(requests, descriptors)]
    meta = {"entries": entries, "classifier": kind, "threshold": float(threshold), "encoder_name": hp.encoder,
            "encoder": encoder.identity, "checkpoint": hp.checkpoint,
            "checkpoint_folder": ck.get("folder"), "base_fingerprint": base_fingerprint(model)}
    payload = {f"edit_embedding.{i}": emb[i] for i in range(len(requests))}
    return Update(method=METHOD, payload=payload, meta=meta)


def scope_for(meta: Mapping[str, Any], folder: str | None) -> CosineScope | LearnedScope:
    """The scope classifier an update names; a learned one is read from the checkpoint
    ``folder`` (once per file)."""
    if meta.get("classifier", "cosine") == "learned":
        if folder is None:
            raise EditError(f"{METHOD}: classifier 'learned' needs a trained checkpoint")
        return _learned(str(Path(folder) / SCOPE_FILE), float(meta["threshold"]))
    return CosineScope(float(meta["threshold"]))


@functools.lru_cache(maxsize=8)
def _learned(path: str, threshold: float) -> LearnedScope:
    if not Path(path).is_file():
        raise EditError(f"{METHOD}: the learned scope classifier {path} is missing; retrain the "
                        "checkpoint (editmethods train serac) or use classifier: cosine")
    return LearnedScope.load(path, threshold)


@attrs.define
class MemoryEntry:
    edit_id: str
    context: str
    embedding: torch.Tensor
    scope: Any
    counterfactual: Any
    encoder_name: str


class EditMemory:
    """The live SERAC edits of one model, its scope classifier and its router."""

    _by_model: weakref.WeakKeyDictionary[torch.nn.Module, EditMemory] = weakref.WeakKeyDictionary()

    def __init__(self, model: torch.nn.Module, tokenizer: Any) -> None:
        self.entries: list[MemoryEntry] = []
        self.router = ContextRouter(model, tokenizer, self.route)

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer: Any) -> EditMemory:
        memory = cls._by_model.get(model)
        if memory is None:
            memory = cls._by_model[model] = cls(model, tokenizer)
        return memory

    @classmethod
    def find(cls, model: torch.nn.Module) -> EditMemory | None:
        return cls._by_model.get(model)

    def add(self, entries: Sequence[MemoryEntry]) -> None:
        self.entries.extend(entries)
        self.router.attach()

    def remove(self, edit_id: str, model: torch.nn.Module) -> None:
        self.entries = [e for e in self.entries if e.edit_id != edit_id]
        if not self.entries:  # no edit left: no hook left
            self.router.detach()
            self._by_model.pop(model, None)

    def scores(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[MemoryEntry]]:
        """Scope score of each text for each edit in memory, ``[len(texts), n_edits]``, minus
        that edit's threshold (so that >= 0 is in scope whatever the classifier)."""
        entries = list(self.entries)
        margin = torch.full((len(texts), len(entries)), -float("inf"))
        groups: dict[tuple[str, int], list[int]] = {}
        for j, e in enumerate(entries):
            groups.setdefault((e.encoder_name, id(e.scope)), []).append(j)
        encoded: dict[str, torch.Tensor] = {}
        for (name, _), cols in groups.items():
            if name not in encoded:
                encoded[name] = get_encoder(name).encode(list(texts))
            scope = entries[cols[0]].scope
            score = scope.score(encoded[name], torch.stack([entries[j].embedding for j in cols]))
            margin[:, cols] = score - scope.threshold
        return margin, entries

    def route(self, texts: Sequence[str]) -> list[Route | None]:
        live = [i for i, t in enumerate(texts) if t.strip()]
        routes: list[Route | None] = [None] * len(texts)
        if not live or not self.entries:
            return routes
        margin, entries = self.scores([texts[i] for i in live])
        best = margin.argmax(dim=1)
        for row, i in enumerate(live):
            e = entries[int(best[row])]
            if float(margin[row, int(best[row])]) >= 0:
                routes[i] = Route((e.context,), e.counterfactual, e.edit_id)
        return routes


def apply_serac(model: torch.nn.Module, tokenizer: Any, update: Update, handle: EditHandle) -> torch.nn.Module:
    _check_model(model)
    meta = update.meta
    counterfactual, ck = counterfactual_for(meta.get("checkpoint"), model)
    scope = scope_for(meta, ck.get("folder"))
    entries = []
    for i, e in enumerate(meta["entries"]):
        emb = update.payload.get(f"edit_embedding.{i}")
        if emb is None:
            raise EditError(f"{METHOD}: update lacks payload 'edit_embedding.{i}'")
        entries.append(MemoryEntry(handle.edit_id, e["context"], emb.float().cpu(),
                                   scope, counterfactual, meta["encoder_name"]))
    EditMemory.of(model, tokenizer).add(entries)
    return model


def rollback_serac(model: torch.nn.Module, handle: EditHandle) -> bool:
    memory = EditMemory.find(model)
    if memory is not None:
        memory.remove(handle.edit_id, model)
    return True
