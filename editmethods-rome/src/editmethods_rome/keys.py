"""Inputs and outputs of a module at a chosen token (the subject's last token, by default).

Shared by ROME (k* and W k*) and MEMIT (the keys of every edit layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from editmethods.errors import EditError, RequestError
from editmethods.scoring import model_device, pad_id
from editmethods.tokens import subject_token_range
from editmethods.toolkit.tracing import trace

FACT_TOKENS = ("subject_last", "subject_first", "subject_first_after_last", "last")


def lookup_index(tokenizer: Any, text: str, subject: str, fact_token: str, start: int = 0) -> int:
    """The token index of ``text`` where a fact about ``subject`` is read and written.

    :param fact_token: ``subject_last`` (the papers' choice), ``subject_first``,
        ``subject_first_after_last`` (the token after the subject) or ``last``.
    :param start: character offset to search the subject from (past a context prefix).
    :raises RequestError: when the subject is not a whole number of tokens (shows them).
    """
    n = len(tokenizer(text).input_ids)
    if fact_token == "last":
        return n - 1
    first, last = subject_token_range(tokenizer, text, subject, start=start)
    if fact_token == "subject_last":
        return last
    if fact_token == "subject_first":
        return first
    if fact_token == "subject_first_after_last":
        if last + 1 >= n:
            raise RequestError(
                f"fact_token 'subject_first_after_last' needs a token after the subject "
                f"{subject!r} in {text!r}"
            )
        return last + 1
    raise RequestError(f"unknown fact_token {fact_token!r}: choose one of {', '.join(FACT_TOKENS)}")


def pad_rows(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask (right padding keeps absolute positions)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def module_io_at(
    model: torch.nn.Module,
    tokenizer: Any,
    module: str,
    texts: Sequence[str],
    indices: Sequence[int],
    *,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output of ``module`` at token ``indices[i]`` of ``texts[i]``.

    :returns: ``(inputs [n, d_in], outputs [n, d_out])`` in float32. The forward pass stops
        after the module.
    """
    device = model_device(model)
    pad = pad_id(tokenizer)
    ins, outs = [], []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        idx = torch.tensor(indices[start : start + batch_size], device=device)
        rows = [tokenizer(t).input_ids for t in chunk]
        ids, mask = pad_rows(rows, pad, device)
        with trace(model, [module], retain_input=True, stop_after=module) as rec:
            model(input_ids=ids, attention_mask=mask)
        arange = torch.arange(len(chunk), device=device)
        inp = rec[module].input
        if inp is None:
            raise EditError(f"module {module!r} did not run during the forward pass")
        ins.append(inp[arange, idx].float())
        out = rec[module].output
        out = out[0] if isinstance(out, tuple) else out
        outs.append(out[arange, idx].float())
    return torch.cat(ins), torch.cat(outs)


def context_sites(tokenizer: Any, prompt: str, subject: str, prefixes: Sequence[str],
                  fact_token: str) -> tuple[list[str], list[int]]:
    """``prefix + prompt`` for each prefix, and the fact token's index in each."""
    texts = [p + prompt for p in prefixes]
    indices = [lookup_index(tokenizer, t, subject, fact_token, start=len(p))
               for t, p in zip(texts, prefixes)]
    return texts, indices


def averaged_keys(
    model: torch.nn.Module,
    tokenizer: Any,
    module: str,
    requests: Sequence[Any],
    prefixes: Sequence[str],
    fact_token: str,
    *,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per request: the module input at the fact token averaged over ``prefixes``, and the
    input with the bare prompt (``prefixes[0]`` must be ``""``).

    :returns: ``(mean_keys [n, d_in], bare_keys [n, d_in])``.
    """
    texts, indices = [], []
    for r in requests:
        t, i = context_sites(tokenizer, r.prompt, r.subject, prefixes, fact_token)
        texts += t
        indices += i
    keys, _ = module_io_at(model, tokenizer, module, texts, indices, batch_size=batch_size)
    keys = keys.view(len(requests), len(prefixes), -1)
    return keys.mean(1), keys[:, 0]
