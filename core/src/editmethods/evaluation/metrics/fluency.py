"""Fluency of generated text: ROME's weighted bi- and tri-gram entropy.

Protocol ``generation``, metric ``ngram_entropy``. For each generation prompt the model
continues greedily for :data:`MAX_NEW_TOKENS` tokens; the text (prompt and continuation, as
ROME scores its generations) is split into words, and the entropies (base 2) of its bigram
and trigram frequency distributions are combined with weights 2/3 and 4/3 and averaged (ROME's
``compute_n_gram_entropy``); a case scores the mean over its prompts. Repetitive degenerate
text (a model stuck saying the new object) scores low.

Differences from ROME: greedy decoding instead of top-k sampling (deterministic), and a
regular-expression word splitter instead of NLTK's ``word_tokenize``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from editmethods.hookspecs import hookimpl
from editmethods.scoring import greedy_continue_batched
from editmethods.types import EditRequest, EvalContext, MetricResult

PROTOCOL = "generation"
#: The names this plugin computes.
METRIC_NAMES = ("ngram_entropy",)
#: Tokens generated per prompt (ROME generates up to 100 tokens with a 1.5B model).
MAX_NEW_TOKENS = 40
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Words and punctuation marks of ``text``."""
    return _WORD.findall(text)


def ngram_entropy_of(text: str, ns: Sequence[int] = (2, 3),
                     weights: Sequence[float] = (2 / 3, 4 / 3)) -> float:
    """Weighted mean of the n-gram entropies (bits) of one text.

    >>> round(ngram_entropy_of("a b a b a b a b"), 3)   # repetitive: low
    0.995
    >>> round(ngram_entropy_of("one two three four five"), 3)
    1.723
    """
    tokens = words(text)
    values = []
    for n, w in zip(ns, weights):
        grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        total = sum(grams.values())
        entropy = -sum(c / total * math.log2(c / total) for c in grams.values()) if total else 0.0
        values.append(w * entropy)
    return sum(values) / len(values)


@hookimpl
def evaluate(model, tokenizer, requests: Sequence[EditRequest], context: EvalContext):
    if not context.wants("ngram_entropy"):
        return []
    cases = [r for r in requests if r.generation_prompts]
    if not cases:
        return []
    prompts = [p for r in cases for p in r.generation_prompts]
    texts = iter(greedy_continue_batched(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS,
                                         batch_size=context.batch_size))
    per_case: list[float] = []
    samples: list[str] = []
    for r in cases:
        full = [p + next(texts) for p in r.generation_prompts]
        per_case.append(sum(ngram_entropy_of(t) for t in full) / len(full))
        if len(samples) < 3:
            samples.append(full[0])
    return [MetricResult("ngram_entropy", sum(per_case) / len(per_case), PROTOCOL, len(per_case),
                         per_case=per_case,
                         details={"max_new_tokens": MAX_NEW_TOKENS, "samples": samples})]
