"""Make a model answer some inputs through a context, without touching a weight.

Every caller (the metrics, ``greedy_continue``, ``generate``, user code) calls the model
with ``input_ids`` and an ``attention_mask``. A :class:`ContextRouter` hooks the model's
forward: the model first runs as usual on the whole batch (so rows that are not routed get
exactly the logits of the unedited model), then each routed row is run again with a context
in front of it, ``{context} {row text}``, by the model itself or by another model (SERAC's
counterfactual model), and that row's logits are replaced by the ones read at the row's own
tokens. Callers therefore see logits aligned with the positions they passed, whatever the
padding (right or left) and whatever the context's length.

The row is re-tokenized after the context, so that its first word takes its mid-text form
(``"ĠThe"`` after ``"Prompt:"``, as the model saw it in training; a name split into rare
pieces may even split differently). Each of the row's tokens is mapped to its place in the
joint tokenization: the longest tail that the joint tokenization reproduces exactly maps one
to one, and the re-tokenized first word(s) map right-aligned, so the logits a caller reads
after the prompt are exact. When the joint tokenization does not align at all, the context's
tokens are put in front of the row's own.

With a key/value cache (``generate``), each call passes only the newest tokens; the router
keeps the token history of the cache it last saw, so routed rows are still answered from
their full text (recomputed without a cache), while the others use the cache as usual.

When a context does not fit the answering model's maximum length, the router uses the next,
shorter alternative of the route (IKE: fewer demonstrations) with a warning; when even the
shortest does not fit, it raises, rather than cutting the query.

:func:`edit_context` writes an edit as a context (``New Fact: {prompt} {target}\nPrompt:``):
the one format that IKE's demonstrations use and that SERAC's counterfactual model is trained
on, kept here so that both read and write it alike.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import torch

from editmethods.errors import EditError


def fact_line(prompt: str, target: str) -> str:
    """The line that states an edit: ``New Fact: {prompt} {target}`` (target stripped).

    >>> fact_line("The capital of France is", " Rome")
    'New Fact: The capital of France is Rome'
    """
    return f"New Fact: {prompt} {target.strip()}"


def edit_context(prompt: str, target: str) -> str:
    """An edit's statement followed by the query marker; the query follows after a space.

    >>> edit_context("The capital of France is", "Rome") + " " + "France's capital is"
    "New Fact: The capital of France is Rome\\nPrompt: France's capital is"
    """
    return f"{fact_line(prompt, target)}\nPrompt:"


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(values)


@attrs.frozen
class Route:
    """How one input row is answered.

    :param contexts: texts to put before the row, preferred first; later ones are shorter
        fallbacks (IKE: fewer demonstrations) used when the preferred one does not fit.
    :param model: the model that answers; ``None`` for the hooked model itself.
    :param label: names the route in warnings (an edit id).
    """

    contexts: tuple[str, ...] = attrs.field(converter=_str_tuple)
    model: Any = None
    label: str = ""


RouteFn = Callable[[Sequence[str]], Sequence["Route | None"]]


def max_positions(model: torch.nn.Module) -> int | None:
    """The longest input the model accepts (``n_positions``/``max_position_embeddings``)."""
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class ContextRouter:
    """Hooks ``model`` so that rows chosen by ``route`` are answered through a context.

    :param model: the model whose forward is hooked (its weights are never written).
    :param tokenizer: its tokenizer (also used for other answering models: they must share it).
    :param route: given the text of each row, returns a :class:`Route` or ``None`` per row.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, route: RouteFn) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.route = route
        self._handles: list[Any] = []
        self._busy = False
        self._warned: set[str] = set()
        self._pending: list[Any] = []
        self._history: dict[int, Any] = {}
        specials = getattr(tokenizer, "all_special_ids", None) or []
        self._specials = {int(i) for i in specials}

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        """Whether the model's forward is hooked."""
        return bool(self._handles)

    def attach(self) -> None:
        """Hook the model's forward (again a no-op when already hooked)."""
        if self._handles:
            return
        self._handles = [
            self.model.register_forward_pre_hook(self._pre, with_kwargs=True),
            self.model.register_forward_hook(self._post, with_kwargs=True),
        ]

    def detach(self) -> None:
        """Remove the hooks and forget any key/value cache history."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._pending, self._history = [], {}

    # -- hooks ---------------------------------------------------------------------------
    def _pre(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if self._busy:
            return None
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        if ids is None or not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            self._pending.append(None)
            return None
        # With a key/value cache (generate), a call passes only the newest tokens: the router
        # keeps each cache's token history so that it always sees every row's full text.
        past = kwargs.get("past_key_values")
        n_past = int(past.get_seq_length()) if past is not None and hasattr(past, "get_seq_length") else 0
        full: torch.Tensor | None = ids
        if n_past:
            known = self._history.get(id(past))
            if known is not None and known[0]() is past and known[1].shape == (ids.shape[0], n_past):
                full = torch.cat([known[1], ids.to(known[1].device)], dim=1)
            else:
                full = None
        if past is not None:
            try:
                self._history = {id(past): (weakref.ref(past), full)} if full is not None else {}
            except TypeError:  # a cache that cannot be weakly referenced: no history kept
                self._history = {}
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
            mask = args[1]
        if full is not None and (mask is None or mask.dim() != 2 or mask.shape != full.shape):
            mask = torch.ones_like(full)
        self._pending.append((full, mask) if full is not None else None)
        return None

    def _post(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if self._busy:
            return None
        pending = self._pending.pop() if self._pending else None
        if pending is None:
            self._warn_once("text", "the model was called without input_ids, or with a cache whose "
                            "history the router did not see: in-context edits are not applied "
                            "to this call")
            return None
        ids, mask = pending
        rows = self._rows(ids, mask)
        texts = [self.tokenizer.decode(body, clean_up_tokenization_spaces=False) if body else ""
                 for _, body, _ in rows]
        routes = list(self.route(texts))
        if all(r is None for r in routes):
            return None
        logits = _get_logits(output)
        if logits is None:
            return None
        new_logits = logits.clone()
        width = ids.shape[1]
        offset = width - logits.shape[1]  # callers may ask for the last positions only
        groups: dict[int, list[int]] = {}
        chosen: dict[int, Route] = {}
        for b, r in enumerate(routes):
            if r is not None and rows[b][1]:
                chosen[b] = r
                groups.setdefault(id(r.model) if r.model is not None else 0, []).append(b)
        for members in groups.values():
            answerer = chosen[members[0]].model or self.model
            limit = max_positions(answerer)
            seqs, maps = [], []
            for b in members:
                joint, dst, before = self._joint(chosen[b], rows[b][1], texts[b], limit)
                seqs.append(joint)
                maps.append((dst, before))
            routed = self._forward(answerer, seqs)
            for j, b in enumerate(members):
                lead_pos, body, body_pos = rows[b]
                dst, before = maps[j]
                pairs = list(zip(body_pos, dst))
                # the position before the body (a BOS, if any) predicts the body's first token
                if lead_pos is not None:
                    pairs.append((lead_pos, before))
                for src, at in pairs:
                    if src - offset >= 0:
                        new_logits[b, src - offset] = routed[j, at].to(new_logits.dtype)
        labels = kwargs.get("labels")
        return _set_logits(output, new_logits, labels)

    # -- helpers -------------------------------------------------------------------------
    def _rows(self, ids: torch.Tensor, mask: torch.Tensor) -> list[tuple[int | None, list[int], list[int]]]:
        """Per row: the position of the last leading special token (or None), the body's ids,
        and the body's positions."""
        out = []
        cpu_ids, cpu_mask = ids.detach().cpu(), mask.detach().cpu()
        for b in range(ids.shape[0]):
            pos = torch.nonzero(cpu_mask[b] > 0).flatten().tolist()
            if pos and pos[-1] - pos[0] + 1 != len(pos):
                raise EditError("the attention mask has gaps inside a row; in-context edits need "
                                "each row's tokens to be contiguous (right or left padding)")
            toks = cpu_ids[b, pos].tolist()
            lead = 0
            while lead < len(toks) and toks[lead] in self._specials:
                lead += 1
            lead_pos = pos[lead - 1] if lead else None
            out.append((lead_pos, toks[lead:], pos[lead:]))
        return out

    def _joint(self, route: Route, body: list[int], text: str, limit: int | None) -> tuple[list[int], list[int], int]:
        """Token ids of ``{context} {row}``, the index in them of each of the row's tokens,
        and the index of the token just before the row (the end of the context)."""
        for n, context in enumerate(route.contexts):
            joint, dst, before = self._align(context, body, text)
            if limit is None or len(joint) <= limit:
                if n:
                    self._warn_once(
                        f"fit:{route.label}",
                        f"edit {route.label}: the query ({len(body)} tokens) with the full context "
                        f"exceeds the model's {limit} positions; using a shorter context "
                        f"(alternative {n + 1} of {len(route.contexts)}, e.g. fewer demonstrations)",
                    )
                return joint, dst, before
        raise EditError(
            f"edit {route.label}: the query ({len(body)} tokens) plus the edit's shortest context "
            f"does not fit the model's {limit} positions; shorten the query (it is never cut)"
        )

    def _align(self, context: str, body: list[int], text: str) -> tuple[list[int], list[int], int]:
        ctx = list(self.tokenizer(context).input_ids)
        joint = list(self.tokenizer(context + " " + text).input_ids)
        c = len(ctx)
        # the longest tail of the row that the joint tokenization reproduces exactly; the
        # words before it (usually just the first) are re-tokenized in their mid-text form
        m = 0
        while m < len(body) and len(joint) - m > c and joint[-(m + 1)] == body[-(m + 1)]:
            m += 1
        if joint[:c] != ctx or m == 0 or (m < len(body) and len(joint) - m <= c):
            joint = ctx + list(body)  # no clean alignment: the row's own tokens after the context
            return joint, [c + j for j in range(len(body))], c - 1
        head = len(body) - m  # row tokens re-tokenized as joint[c : len(joint) - m]
        end_head = len(joint) - m
        dst = [max(c, end_head - head + j) for j in range(head)]
        dst += [end_head + i for i in range(m)]
        return joint, dst, c - 1

    @torch.no_grad()
    def _forward(self, model: torch.nn.Module, seqs: list[list[int]]) -> torch.Tensor:
        pad = _pad_id(self.tokenizer)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # right padding: positions are those of unpadded rows
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        device = next(model.parameters()).device
        self._busy = True
        try:
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        finally:
            self._busy = False
        logits = _get_logits(out)
        if logits is None:
            raise EditError(f"the answering model {type(model).__name__} returned no logits: "
                            "routing needs a causal language model")
        return logits

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def _get_logits(output: Any) -> torch.Tensor | None:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, tuple):
        for item in output:
            if isinstance(item, torch.Tensor) and item.dim() == 3:
                return item
    return logits


def _set_logits(output: Any, logits: torch.Tensor, labels: Any) -> Any:
    loss = None
    if labels is not None:
        # the loss the model computed was on the unedited logits: recompute it (causal LM:
        # position t predicts label t+1, -100 ignored)
        shift = logits[:, :-1].float()
        target = labels[:, 1:].to(shift.device)
        loss = torch.nn.functional.cross_entropy(shift.reshape(-1, shift.shape[-1]),
                                                 target.reshape(-1), ignore_index=-100)
    if isinstance(output, tuple):
        items = list(output)
        for i, item in enumerate(items):
            if isinstance(item, torch.Tensor) and item.dim() == 3:
                items[i] = logits
                break
        if loss is not None and items and items[0].dim() == 0:
            items[0] = loss
        return type(output)(items) if type(output) is tuple else tuple(items)
    output.logits = logits
    if loss is not None:
        output.loss = loss
    return output
