"""Does the model now *say* the new object? Greedy generation without teacher forcing.

Protocol ``wild``, after the WILD evaluation of "The Mirage of Model Editing" (Yang et al.,
2025): teacher-forced scores feed the target's own tokens back to the model and so can call
an edit a success that the model never produces when it writes on its own. Here the model
continues each prompt greedily and the text it writes is compared with the expected answer:

- **budget**: up to the expected answer's token count (in context, after the prompt) plus
  :data:`EXTRA_TOKENS` new tokens; a prompt's generation stops early at EOS or at a token
  containing a newline;
- **answer**: the continuation without its leading spaces, up to its first newline (a
  continuation that starts with a newline has an empty answer);
- **normalization**: Unicode NFKC, lower case, every punctuation character (Unicode category
  ``P*``) replaced by a space, split on whitespace into words;
- **hit**: the answer's first *k* words equal the expected answer's *k* words. What follows
  them (", France", ". He was ...") does not matter, so a period ends no answer early
  (answers such as "St. Louis" keep their abbreviation points).

Metrics (a case is the mean over its prompts, a metric the mean over cases):

- ``gen_efficacy``: the edit prompt says ``target_new``;
- ``gen_paraphrase``: each paraphrase prompt says ``target_new``;
- ``gen_locality``: each neighbour prompt (locality pairs of kind ``neighborhood``, other
  subjects with the old object, or ``nq``, unrelated questions) still says what the *unedited*
  model said: the first *k* words of the two answers agree, *k* being the word count of the
  pair's expected answer. The unedited answers come from ``context.unedited["wild"]``
  (this module's ``remember_unedited`` hook records them when
  ``Editor.remember_unedited(requests, generation=True)`` runs before editing; the benchmark
  runner does so); pairs without one are not scored. Pairs that another request of the same batch
  rewrites are left out (``editmethods.evaluation.metrics.overlap``).

The ``exact-match`` protocol (``metrics/answers.py``) checks with teacher forcing that the
argmax reproduces every token of an answer; this one compares generated *text*, so a target
the model writes with other tokens, other case or trailing punctuation still counts, and the
model is never shown the target.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from editmethods.evaluation.metrics.overlap import rewritten_by_batch
from editmethods.evaluation.metrics.target import locality_key
from editmethods.hookspecs import hookimpl
from editmethods.scoring import greedy_tokens_batched, target_ids
from editmethods.types import EditRequest, EvalContext, MetricResult, PromptAnswer

PROTOCOL = "wild"
NAMES = ("gen_efficacy", "gen_paraphrase", "gen_locality")
#: The names this plugin computes (see ``editmethods.request_checks.metric_names``).
METRIC_NAMES = NAMES
#: New tokens generated beyond the expected answer's own token count.
EXTRA_TOKENS = 4
#: Locality kinds that ``gen_locality`` scores: other subjects and unrelated questions.
NEIGHBOUR_KINDS = ("neighborhood", "nq")
_SPACE = re.compile(r"\s+")


def normalized_words(text: str) -> list[str]:
    """Words of ``text`` after NFKC, lower-casing and punctuation removal.

    >>> normalized_words("  Paris, France.")
    ['paris', 'france']
    >>> normalized_words("St. Louis")
    ['st', 'louis']
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return [w for w in _SPACE.split(text) if w]


def answer_of(continuation: str) -> str:
    """The answer part of a continuation: leading spaces dropped, up to the first newline.

    >>> answer_of(" Warsaw.\\nThe city of")
    'Warsaw.'
    """
    return continuation.lstrip(" \t").split("\n", 1)[0]


def says(continuation: str, expected: str) -> bool:
    """Whether a generated continuation gives ``expected`` as its answer (module docs).

    >>> says(" Paris, France.", "Paris"), says(" paris", "Paris"), says(" Lyon", "Paris")
    (True, True, False)
    >>> says("\\nParis", "Paris"), says(" the city of Paris", "Paris")
    (False, False)
    """
    want = normalized_words(expected)
    answer = answer_of(continuation)
    if not want:  # an expected answer of punctuation only: compare the text itself
        return answer.strip().casefold().startswith(expected.strip().casefold())
    return normalized_words(answer)[: len(want)] == want


def agrees(edited: str, unedited: str, expected: str) -> bool:
    """Whether two continuations give the same answer on the first *k* words, *k* the word
    count of ``expected`` (at least one)."""
    k = max(1, len(normalized_words(expected)))
    return normalized_words(answer_of(edited))[:k] == normalized_words(answer_of(unedited))[:k]


def budget(tokenizer: Any, prompt: str, answer: str) -> int:
    """New tokens generated for ``prompt``: the answer's token count plus :data:`EXTRA_TOKENS`."""
    return len(target_ids(tokenizer, prompt, " " + answer.strip())[1]) + EXTRA_TOKENS


def _newline_stop(tokenizer: Any):
    seen: dict[int, bool] = {}

    def stop(token: int) -> bool:
        if token not in seen:
            seen[token] = "\n" in tokenizer.decode([token])
        return seen[token]

    return stop


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str], *,
             batch_size: int = 32) -> list[str]:
    """Greedy continuations of ``prompts``, each with the budget its expected answer gives."""
    budgets = [budget(tokenizer, p, a) for p, a in zip(prompts, answers)]
    rows = greedy_tokens_batched(model, tokenizer, list(prompts), max_new_tokens=budgets,
                                 batch_size=batch_size, stop=_newline_stop(tokenizer))
    return [tokenizer.decode(row) for row in rows]


def neighbour_pairs(request: EditRequest,
                    skip: Iterable[int] = ()) -> list[tuple[int, PromptAnswer]]:
    """The request's locality pairs that ``gen_locality`` scores, with their indices."""
    skip = set(skip)
    return [(k, p) for k, p in enumerate(request.locality)
            if p.kind in NEIGHBOUR_KINDS and k not in skip]


def unedited_answers(model: Any, tokenizer: Any, requests: Sequence[EditRequest], *,
                     known: Mapping[str, str] | None = None,
                     batch_size: int = 32) -> dict[str, str]:
    """The model's continuations of the requests' neighbour prompts, by ``locality_key``
    (those in ``known`` are not generated again). Call it on the unedited model."""
    pairs: dict[str, PromptAnswer] = {}
    for r in requests:
        for _, p in neighbour_pairs(r):
            key = locality_key(p.prompt, p.answer)
            if known is None or key not in known:
                pairs.setdefault(key, p)
    if not pairs:
        return {}
    texts = generate(model, tokenizer, [p.prompt for p in pairs.values()],
                     [p.answer for p in pairs.values()], batch_size=batch_size)
    return dict(zip(pairs, texts))


#: The namespace of ``EvalContext.unedited`` the unedited continuations are kept under.
MEMORY = "wild"


@hookimpl
def remember_unedited(model, tokenizer, requests: Sequence[EditRequest], memory, generation: bool,
                      batch_size: int):
    if generation:
        known = memory.setdefault(MEMORY, {})
        known.update(unedited_answers(model, tokenizer, requests, known=known,
                                      batch_size=batch_size))


@hookimpl
def evaluate(model, tokenizer, requests: Sequence[EditRequest], context: EvalContext):
    wanted = [n for n in NAMES if context.wants(n)]
    if not wanted:
        return []
    rewritten = rewritten_by_batch(requests)
    # (case index, metric, prompt, expected answer, unedited continuation or None)
    items: list[tuple[int, str, str, str, str | None]] = []
    excluded = 0
    for i, r in enumerate(requests):
        if "gen_efficacy" in wanted:
            items.append((i, "gen_efficacy", r.prompt, r.target_new, None))
        if "gen_paraphrase" in wanted:
            items += [(i, "gen_paraphrase", p, r.target_new, None) for p in r.rephrase_prompts]
        if "gen_locality" in wanted:
            excluded += len(neighbour_pairs(r)) - len(neighbour_pairs(r, rewritten[i]))
            for _, p in neighbour_pairs(r, rewritten[i]):
                before = context.unedited.get(MEMORY, {}).get(locality_key(p.prompt, p.answer))
                if before is not None:
                    items.append((i, "gen_locality", p.prompt, p.answer, before))
    if not items:
        return []
    texts = generate(model, tokenizer, [it[2] for it in items], [it[3] for it in items],
                     batch_size=context.batch_size)
    by_metric: dict[str, dict[int, list[float]]] = {n: {} for n in NAMES}
    samples: dict[str, list[dict[str, str]]] = {n: [] for n in NAMES}
    for (i, name, prompt, expected, before), text in zip(items, texts):
        hit = says(text, expected) if before is None else agrees(text, before, expected)
        by_metric[name].setdefault(i, []).append(float(hit))
        if len(samples[name]) < 3:
            sample = {"prompt": prompt, "generated": text, "expected": expected}
            if before is not None:
                sample["unedited"] = before
            samples[name].append(sample)
    results = []
    for name in wanted:
        cases = by_metric[name]
        if not cases:
            continue
        per_case = [sum(v) / len(v) for _, v in sorted(cases.items())]
        details: dict[str, object] = {"prompts": sum(len(v) for v in cases.values()),
                                      "samples": samples[name]}
        if name == "gen_locality":
            details["excluded_rewritten_by_batch"] = excluded
        results.append(MetricResult(name, sum(per_case) / len(per_case), PROTOCOL, len(per_case),
                                    per_case=per_case, details=details))
    return results
