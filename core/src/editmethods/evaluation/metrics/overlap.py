"""Which locality pairs of a batch are facts that another request of the same batch rewrites.

A locality pair asks "is this other fact still what it was?". When several edits are evaluated
together (a MEMIT batch, a sequence of edits kept in place) a pair can be about a fact that
another request of the batch deliberately changes: CounterFact's neighbours share the edited
relation and the old object, so the neighbour "Fenna Ostikka was born in → Mulenvos" of one
edit is exactly the fact a second edit of the batch rewrites to "Paris". Counting that change
as spill-over would charge an edit for doing what it was asked. On a small world this is not
rare: a batch of 100 of the reference model's 105 test people makes a third of the
neighbourhood prompts such pairs.

A pair is *rewritten by the batch* when another request's subject occurs in its prompt (as a
whole word) and that request's ``ground_truth`` is the pair's answer: the pair asks for the old
object of a fact the batch edits. The request the pair belongs to is never counted (its own
relation-specificity pairs are about its other facts). Requests without ``ground_truth`` never
exclude anything, since whether they rewrite a pair cannot be told.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from editmethods.types import EditRequest


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def rewritten_by_batch(requests: Sequence[EditRequest]) -> list[set[int]]:
    """For each request, the indices (into its ``locality``) of pairs another request rewrites.

    >>> from editmethods.types import EditRequest, PromptAnswer
    >>> a = EditRequest("Ann Lee was born in", "Ann Lee", "Paris", ground_truth="Oslo",
    ...                 locality=[PromptAnswer("Bo Kim came into the world in", "Oslo", "neighborhood"),
    ...                           PromptAnswer("Cy Day came into the world in", "Oslo", "neighborhood")])
    >>> b = EditRequest("Bo Kim was born in", "Bo Kim", "Rome", ground_truth="Oslo")
    >>> rewritten_by_batch([a, b])
    [{0}, set()]
    >>> rewritten_by_batch([a])
    [set()]
    """
    # Index by old object: a pair can only be rewritten by requests whose ground truth is its
    # answer, so each pair runs one regular expression (the alternation of those requests'
    # subjects) however large the batch (CounterFact runs go to 10,000 edits).
    groups: dict[str, dict[str, set[int]]] = {}
    for j, r in enumerate(requests):
        if r.ground_truth:
            groups.setdefault(_norm(r.ground_truth), {}).setdefault(r.subject, set()).add(j)
    patterns = {answer: re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(s) for s in sorted(subjects, key=len, reverse=True))
        + r")(?!\w)") for answer, subjects in groups.items()}
    out: list[set[int]] = []
    for i, r in enumerate(requests):
        hits = set()
        for k, pair in enumerate(r.locality):
            answer = _norm(pair.answer)
            if answer in groups and any(groups[answer][m.group(0)] - {i}
                                        for m in patterns[answer].finditer(pair.prompt)):
                hits.add(k)
        out.append(hits)
    return out
