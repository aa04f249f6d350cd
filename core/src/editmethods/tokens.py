"""Token positions of subjects in prompts (used by locate-then-edit methods and tracing)."""

from __future__ import annotations

from typing import Any

from editmethods.errors import RequestError


def subject_token_range(tokenizer: Any, prompt: str, subject: str, *, start: int = 0) -> tuple[int, int]:
    """``(first, last)`` token indices of the first occurrence of ``subject`` in
    ``prompt`` (inclusive), as the model sees the whole prompt.

    ``start`` is the character offset to search from (e.g. past a generated prefix, which
    might itself mention the subject).

    Found by tokenizing the text up to the subject's start and end; when that prefix does
    not tokenize as a prefix of the whole prompt (the tokenizer merges across the subject's
    boundary), the error shows the tokens so that the prompt can be rephrased.
    """
    start = prompt.find(subject, start)
    if start < 0:
        raise RequestError(f"subject {subject!r} does not occur in prompt {prompt!r}")
    end = start + len(subject)
    full = list(tokenizer(prompt).input_ids)
    before = list(tokenizer(prompt[:start]).input_ids) if start else None
    upto = list(tokenizer(prompt[:end]).input_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and upto and upto[-1] == eos and full and full[-1] == eos:
        upto = upto[:-1]
        before = before[:-1] if before else before
    if full[: len(upto)] != upto:
        shown = [tokenizer.decode([t]) for t in full]
        raise RequestError(
            f"subject {subject!r} is not a whole number of tokens in prompt {prompt!r}: the "
            f"prompt tokenizes as {shown}; rephrase so that the subject is followed by a space "
            "or punctuation"
        )
    if before and full[: len(before)] != before and prompt[:start].rstrip():
        # "of " tokenizes with the space as a token of its own, while in the whole prompt the
        # space belongs to the subject's first token ("ĠFrance", "▁France"): count the
        # tokens before the subject without that trailing space.
        stripped = list(tokenizer(prompt[:start].rstrip()).input_ids)
        if eos is not None and stripped and stripped[-1] == eos and full and full[-1] == eos:
            stripped = stripped[:-1]
        if full[: len(stripped)] == stripped:
            before = stripped
    first = len(before) if before else _n_special_prefix(tokenizer, full)
    return first, len(upto) - 1


def subject_last_token(tokenizer: Any, prompt: str, subject: str) -> int:
    """Index of the subject's last token in the tokenized ``prompt``."""
    return subject_token_range(tokenizer, prompt, subject)[1]


def _n_special_prefix(tokenizer: Any, ids: list[int]) -> int:
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    n = 0
    while n < len(ids) and ids[n] in special:
        n += 1
    return n
