"""IKE (Zheng et al., EMNLP 2023): edit by demonstration, never by writing a weight.

``compute_update`` retrieves the demonstrations nearest to each new fact and assembles the
context; the update carries it in ``meta`` (JSON) and the new fact's embedding in
``payload``, so a saved edit re-applies without the store. ``apply`` adds the context to the
model's in-context memory and hooks the model (see :mod:`editmethods.toolkit.routing`);
``rollback`` removes exactly that edit's contexts, and the hooks go with the last one.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from editmethods.errors import EditError
from editmethods.scoring import model_config
from editmethods.toolkit.encoder import SentenceEncoder, get_encoder
from editmethods.toolkit.routing import ContextRouter, Route, edit_context
from editmethods.types import EditHandle, EditRequest, Update
from editmethods_ike.demonstrations import (
    Demonstration,
    DemonstrationError,
    assemble,
    default_store_path,
    load_demonstrations,
    nearest,
)
from editmethods_ike.hparams_ike import IKEHyperParams

METHOD = "ike"
SEPARATOR = "\n\n"


@attrs.frozen
class DemonstrationStore:
    """Demonstrations and their embeddings (computed once, cached on disk)."""

    demos: tuple[Demonstration, ...]
    texts: tuple[str, ...]
    embeddings: torch.Tensor
    encoder: str
    source: str

    def retrieve(self, query: str, k: int, encoder: SentenceEncoder) -> tuple[list[str], list[float]]:
        """The ``k`` nearest demonstrations' texts, nearest LAST, and their similarities."""
        q = encoder.encode([query])[0]
        idx, sims = nearest(self.embeddings, q, k)
        return [self.texts[i] for i in reversed(idx)], list(reversed(sims))


@functools.lru_cache(maxsize=4)
def _store(path: str, mtime: float, encoder_name: str, seed: int,
           records: tuple[int, int] | None = None) -> DemonstrationStore:
    demos = load_demonstrations(path, seed=seed, records=records)
    texts = tuple(d.text() for d in demos)
    encoder = get_encoder(encoder_name)
    return DemonstrationStore(tuple(demos), texts, encoder.encode_cached(list(texts)),
                              encoder.identity, path)


def get_store(hp: IKEHyperParams) -> DemonstrationStore:
    """The store named by ``hp.demonstrations`` (built once per file version and encoder)."""
    path = Path(hp.demonstrations) if hp.demonstrations else default_store_path()
    if not path.is_file():
        raise DemonstrationError(f"demonstration store not found: {path} (hparam 'demonstrations')")
    records = tuple(hp.demonstrations_range) if hp.demonstrations_range is not None else None
    return _store(str(path.resolve()), path.stat().st_mtime, hp.encoder, hp.seed, records)


def copy_text(prompt: str, target: str) -> str:
    """The copy demonstration of an edit: the retrieval query for its neighbours."""
    return Demonstration(prompt, target, prompt, target).text()


def check_model(model: torch.nn.Module) -> None:
    config = model_config(model)
    if getattr(config, "is_encoder_decoder", False):
        raise EditError(
            f"{METHOD} answers through a prompt prefix and supports decoder-only models; "
            f"{config.model_type!r} is an encoder-decoder"
        )


def compute_ike_update(model: torch.nn.Module, tokenizer: Any, requests: Sequence[EditRequest],
                       hp: IKEHyperParams) -> Update:
    """Retrieve demonstrations for each request; the update holds the assembled contexts."""
    check_model(model)
    encoder = get_encoder(hp.encoder)
    store = get_store(hp) if hp.k > 0 else None
    entries, payload = [], {}
    for i, r in enumerate(requests):
        if store is not None:
            demos, sims = store.retrieve(copy_text(r.prompt, r.target_new), hp.k, encoder)
        else:
            demos, sims = [], []
        entries.append({
            "subject": r.subject,
            "prompt": r.prompt,
            "target_new": r.target_new.strip(),
            "demonstrations": demos,
            "similarities": sims,
            "scope": hp.scope,
        })
        payload[f"fact_embedding.{i}"] = encoder.encode([copy_text(r.prompt, r.target_new)])[0]
    meta = {"entries": entries, "encoder": encoder.identity, "encoder_name": hp.encoder,
            "store": store.source if store is not None else None, "separator": SEPARATOR}
    return Update(method=METHOD, payload=payload, meta=meta)


# -- the in-context memory attached to a model --------------------------------------------


@attrs.define
class Entry:
    edit_id: str
    subject: str
    contexts: tuple[str, ...]
    embedding: torch.Tensor
    scope: str
    encoder_name: str


class InContextMemory:
    """The live IKE edits of one model and the router that answers through them."""

    _by_model: weakref.WeakKeyDictionary[torch.nn.Module, InContextMemory] = weakref.WeakKeyDictionary()

    def __init__(self, model: torch.nn.Module, tokenizer: Any) -> None:
        self.entries: list[Entry] = []
        self.router = ContextRouter(model, tokenizer, self.route)

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer: Any = None) -> InContextMemory:
        memory = cls._by_model.get(model)
        if memory is None:
            if tokenizer is None:
                raise EditError(f"{METHOD}: no in-context memory on this model")
            memory = cls._by_model[model] = cls(model, tokenizer)
        return memory

    @classmethod
    def find(cls, model: torch.nn.Module) -> InContextMemory | None:
        return cls._by_model.get(model)

    def add(self, entries: Sequence[Entry]) -> None:
        self.entries.extend(entries)
        self.router.attach()

    def remove(self, edit_id: str, model: torch.nn.Module) -> int:
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.edit_id != edit_id]
        if not self.entries:  # no edit left: no hook left, the model is its old self
            self.router.detach()
            self._by_model.pop(model, None)
        return before - len(self.entries)

    def route(self, texts: Sequence[str]) -> list[Route | None]:
        routes: list[Route | None] = []
        for text in texts:
            candidates = [e for e in self.entries if e.scope == "all" or e.subject in text]
            if not candidates:
                routes.append(None)
                continue
            if len(candidates) > 1:
                # several edits could answer: the one whose new fact is nearest to the input
                sims = [float(e.embedding @ get_encoder(e.encoder_name).encode([text])[0])
                        for e in candidates]
                best = candidates[max(range(len(sims)), key=lambda i: (sims[i], i))]  # ties: newest
            else:
                best = candidates[0]
            routes.append(Route(best.contexts, None, best.edit_id))
        return routes


def contexts_of(entry: dict[str, Any], separator: str = SEPARATOR) -> tuple[str, ...]:
    """The entry's contexts, from all demonstrations down to none (farthest dropped first)."""
    demos = list(entry["demonstrations"])
    last = edit_context(entry["prompt"], entry["target_new"])
    return tuple(assemble(demos[n:], last, separator) for n in range(len(demos) + 1))


def apply_ike(model: torch.nn.Module, tokenizer: Any, update: Update, handle: EditHandle) -> torch.nn.Module:
    check_model(model)
    meta = update.meta
    entries = []
    for i, e in enumerate(meta["entries"]):
        emb = update.payload.get(f"fact_embedding.{i}")
        if emb is None:
            raise EditError(f"{METHOD}: update lacks payload 'fact_embedding.{i}'")
        entries.append(Entry(handle.edit_id, e["subject"], contexts_of(e, meta.get("separator", SEPARATOR)),
                             emb.float().cpu(), e.get("scope", "subject"), meta["encoder_name"]))
    memory = InContextMemory.of(model, tokenizer)
    memory.add(entries)
    return model


def rollback_ike(model: torch.nn.Module, handle: EditHandle) -> bool:
    memory = InContextMemory.find(model)
    if memory is not None:
        memory.remove(handle.edit_id, model)
    return True
