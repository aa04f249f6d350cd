"""Batched teacher-forced scoring of target continuations, for metrics and methods.

Sequences are right-padded, so models with absolute positions (GPT-2) see the same positions
as unpadded; logits are read at each target token's preceding position. Encoder-decoder
models (T5) get the prompt in the encoder and the target in the decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import attrs
import torch

from editmethods.errors import RequestError


def target_ids(tokenizer: Any, prompt: str, target_text: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt`` and of ``target_text`` as it continues the prompt.

    The target is tokenized in context (prompt + target, minus the prompt's tokens) so that
    tokenizers that merge across the boundary or add a prefix space give the ids the model
    would actually see; if the prompt's tokens are not a prefix of the joint tokenization,
    the target is tokenized alone.
    """
    p_ids = list(tokenizer(prompt).input_ids)
    full = list(tokenizer(prompt + target_text).input_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    if full and full[-1] == eos and (not p_ids or p_ids[-1] == eos):
        # tokenizers that append EOS (T5): score the target without it
        full, p_ids = full[:-1], p_ids[:-1]
    if full[: len(p_ids)] == p_ids and len(full) > len(p_ids):
        t_ids = full[len(p_ids):]
    else:
        t_ids = list(tokenizer(target_text, add_special_tokens=False).input_ids)
    if not t_ids:
        raise RequestError(
            f"target {target_text!r} is empty after tokenization: give a non-empty target"
        )
    return p_ids, t_ids


@attrs.frozen
class TargetScores:
    """Per-case scores of a target given a prompt."""

    #: log-probability of each target token (teacher forced).
    logprobs: tuple[torch.Tensor, ...]
    #: the model's argmax token at each target position.
    predictions: tuple[torch.Tensor, ...]
    #: the target's token ids.
    targets: tuple[torch.Tensor, ...]

    def token_accuracy(self) -> list[float]:
        """Fraction of target tokens that are the argmax (EasyEdit's accuracy)."""
        return [float((p == t).float().mean()) for p, t in zip(self.predictions, self.targets)]

    def mean_nll(self) -> list[float]:
        """Mean negative log-likelihood per target token (ROME's CounterFact comparison)."""
        return [float(-lp.mean()) for lp in self.logprobs]


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id rows into ``(input_ids, attention_mask)`` tensors."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def model_config(model: torch.nn.Module) -> Any:
    """``model.config``: a transformers config, or any object with the attributes read from it.

    Typed ``Any`` on purpose: ``nn.Module`` types the attributes it does not declare as
    ``Tensor | Module``, and which attributes a config has depends on the architecture
    (``decoder_start_token_id`` is an encoder-decoder's).
    """
    return model.config


class _Generates(Protocol):
    """What :func:`greedy_continue` needs of an encoder-decoder: transformers' ``generate``,
    returning token ids (no ``return_dict_in_generate``)."""

    def generate(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor: ...


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def score_targets(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    batch_size: int = 32,
) -> TargetScores:
    """Teacher-forced log-probabilities and argmax predictions of ``targets`` after ``prompts``.

    :param targets: continuation texts, with their leading space (``" Rome"``).
    """
    if len(prompts) != len(targets):
        raise ValueError("prompts and targets must have the same length")
    device = model_device(model)
    pad = pad_id(tokenizer)
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    logprobs, preds, tgts = [], [], []
    pairs = [target_ids(tokenizer, p, t) for p, t in zip(prompts, targets)]
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        if encoder_decoder:
            enc_ids, enc_mask = pad_rows([p for p, _ in chunk], pad)
            start_id = model_config(model).decoder_start_token_id
            dec_rows = [[start_id] + t[:-1] for _, t in chunk]
            dec_ids, dec_mask = pad_rows(dec_rows, pad)
            out = model(input_ids=enc_ids.to(device), attention_mask=enc_mask.to(device),
                        decoder_input_ids=dec_ids.to(device), decoder_attention_mask=dec_mask.to(device))
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            for i, (_, t) in enumerate(chunk):
                rows = logp[i, : len(t)]
                tt = torch.tensor(t, device=rows.device)
                logprobs.append(rows.gather(1, tt[:, None])[:, 0].cpu())
                preds.append(rows.argmax(-1).cpu())
                tgts.append(tt.cpu())
        else:
            ids, mask = pad_rows([p + t for p, t in chunk], pad)
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device))
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            for i, (p, t) in enumerate(chunk):
                rows = logp[i, len(p) - 1 : len(p) - 1 + len(t)]
                tt = torch.tensor(t, device=rows.device)
                logprobs.append(rows.gather(1, tt[:, None])[:, 0].cpu())
                preds.append(rows.argmax(-1).cpu())
                tgts.append(tt.cpu())
    return TargetScores(tuple(logprobs), tuple(preds), tuple(tgts))


@torch.no_grad()
def greedy_continue(
    model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 8
) -> list[str]:
    """Greedy continuations of ``prompts`` (the text after each prompt), one prompt at a time
    without a cache, so that edits hooked into the forward pass are always seen."""
    device = model_device(model)
    outputs = []
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids.to(device)
            gen = cast(_Generates, model).generate(ids, max_new_tokens=max_new_tokens,
                                                   do_sample=False)
            outputs.append(tokenizer.decode(gen[0], skip_special_tokens=True))
        return outputs
    eos = getattr(tokenizer, "eos_token_id", None)
    for prompt in prompts:
        ids = list(tokenizer(prompt).input_ids)
        new: list[int] = []
        for _ in range(max_new_tokens):
            x = torch.tensor([ids + new], device=device)
            nxt = int(model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, -1].argmax())
            if nxt == eos:
                break
            new.append(nxt)
        outputs.append(tokenizer.decode(new))
    return outputs


@torch.no_grad()
def greedy_tokens_batched(
    model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str],
    *, max_new_tokens: int | Sequence[int] = 8, batch_size: int = 32,
    stop: Callable[[int], bool] | None = None,
) -> list[list[int]]:
    """Greedy continuations of many prompts as token ids, ``batch_size`` at a time, no cache.

    Rows are right-padded and each step reads the logits at every row's last real token and
    writes the new token just after it, so positions are those of an unpadded sequence (GPT-2)
    and padding only ever follows a row's real tokens. Every step runs the full forward pass,
    so edits hooked into it are always seen.

    :param max_new_tokens: one budget for every prompt, or one per prompt.
    :param stop: a row stops after a token for which this returns true (the token is kept),
        e.g. one that contains a newline. A row also stops at EOS (not kept) and at its budget;
        a batch stops when all its rows have.
    """
    budgets = ([int(max_new_tokens)] * len(prompts) if isinstance(max_new_tokens, int)
               else [int(b) for b in max_new_tokens])
    if len(budgets) != len(prompts):
        raise ValueError("give one max_new_tokens per prompt")
    device = model_device(model)
    pad = pad_id(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    outputs: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        rows = [list(tokenizer(p).input_ids) for p in prompts[start : start + batch_size]]
        limits = budgets[start : start + batch_size]
        steps = max(limits, default=0)
        new: list[list[int]] = [[] for _ in rows]
        if steps <= 0:
            outputs.extend(new)
            continue
        lengths = torch.tensor([len(r) for r in rows])
        ids, mask = pad_rows([r + [pad] * steps for r in rows], pad)
        mask.zero_()
        for i, r in enumerate(rows):
            mask[i, : len(r)] = 1
        ids, mask = ids.to(device), mask.to(device)
        index = torch.arange(len(rows))
        done = [limit <= 0 for limit in limits]
        for _ in range(steps):
            width = int(lengths.max())
            logits = model(input_ids=ids[:, :width], attention_mask=mask[:, :width]).logits
            nxt = logits[index.to(logits.device), (lengths - 1).to(logits.device)].argmax(-1)
            ids[index, lengths] = nxt.to(ids.device)
            mask[index, lengths] = 1
            lengths = lengths + 1
            for i, token in enumerate(nxt.tolist()):
                if done[i]:
                    continue
                if eos is not None and token == eos:
                    done[i] = True
                    continue
                new[i].append(token)
                if len(new[i]) >= limits[i] or (stop is not None and stop(token)):
                    done[i] = True
            if all(done):
                break
        outputs.extend(new)
    return outputs


@torch.no_grad()
def greedy_continue_batched(
    model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 8,
    batch_size: int = 32,
) -> list[str]:
    """Greedy continuations of many prompts, ``batch_size`` at a time, without a cache
    (:func:`greedy_tokens_batched`, decoded); the text after EOS is dropped. Encoder-decoder
    models fall back to :func:`greedy_continue`.
    """
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return greedy_continue(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    rows = greedy_tokens_batched(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size)
    return [tokenizer.decode(row) for row in rows]
