"""EasyEdit's teacher-forced target-token accuracy: reliability, generalization, locality,
portability.

Protocol ``teacher-forced``: the target's tokens are fed after the prompt and each position's
argmax is compared with the target token; a case scores the fraction of tokens that match.
Locality is the agreement of the edited model's argmax tokens with the unedited model's on
the locality prompt and answer (the editor records those before the edit); ``locality``
pools every locality pair, ``locality_<kind>`` (``locality_neighborhood``,
``locality_relation_specificity``, ...) reports each kind of pair on its own. A locality pair
that another request of the same batch rewrites is left out and counted in the details
(``editmethods.evaluation.metrics.overlap``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from editmethods.evaluation.metrics.overlap import rewritten_by_batch
from editmethods.hookspecs import hookimpl
from editmethods.scoring import score_targets
from editmethods.types import EditRequest, EvalContext, MetricResult

PROTOCOL = "teacher-forced"
#: The names this plugin computes (``locality_<kind>``: one per kind of locality pair);
#: ``--metrics`` and ``evaluate(metrics=...)`` refuse names no metric plugin declares.
METRIC_NAMES = ("reliability", "generalization", "portability", "locality", "locality_*")


def _result(name: str, per_case: list[float], **details: Any) -> MetricResult:
    value = sum(per_case) / len(per_case) if per_case else float("nan")
    return MetricResult(name=name, value=value, protocol=PROTOCOL, n=len(per_case),
                        per_case=per_case, details=details)


def locality_key(prompt: str, answer: str) -> str:
    """Key under which pre-edit predictions of a locality pair are kept."""
    return f"{prompt}\x1f{answer}"


def locality_predictions(model, tokenizer, pairs, batch_size=32) -> dict[str, torch.Tensor]:
    """Argmax tokens of the model over each locality pair's answer (teacher forced)."""
    pairs = list(pairs)
    if not pairs:
        return {}
    scores = score_targets(model, tokenizer, [p.prompt for p in pairs],
                           [" " + p.answer.strip() for p in pairs], batch_size=batch_size)
    return {locality_key(p.prompt, p.answer): pred for p, pred in zip(pairs, scores.predictions)}


#: The namespace of ``EvalContext.unedited`` these metrics keep their predictions under.
MEMORY = "target"


@hookimpl
def remember_unedited(model, tokenizer, requests: Sequence[EditRequest], memory, batch_size: int):
    known = memory.setdefault(MEMORY, {})
    pairs = {locality_key(p.prompt, p.answer): p for r in requests for p in r.locality}
    missing = [p for key, p in pairs.items() if key not in known]
    known.update(locality_predictions(model, tokenizer, missing, batch_size=batch_size))


@hookimpl
def evaluate(model, tokenizer, requests: Sequence[EditRequest], context: EvalContext):
    results: list[MetricResult] = []
    bs = context.batch_size
    if context.wants("reliability"):
        s = score_targets(model, tokenizer, [r.prompt for r in requests],
                          [r.target_text for r in requests], batch_size=bs)
        results.append(_result("reliability", s.token_accuracy()))
    if context.wants("generalization"):
        pairs = [(p, r.target_text) for r in requests for p in r.rephrase_prompts]
        if pairs:
            s = score_targets(model, tokenizer, [p for p, _ in pairs], [t for _, t in pairs],
                              batch_size=bs)
            results.append(_result("generalization", s.token_accuracy()))
    if context.wants("portability"):
        portable = [p for r in requests for p in r.portability]
        if portable:
            s = score_targets(model, tokenizer, [p.prompt for p in portable],
                              [" " + p.answer.strip() for p in portable], batch_size=bs)
            results.append(_result("portability", s.token_accuracy()))
    if context.wants("locality") or any(m.startswith("locality_") for m in context.metrics):
        unedited = context.unedited.get(MEMORY, {})
        rewritten = rewritten_by_batch(requests)
        # Pairs that another request of the batch rewrites were meant to change: left out.
        kept = [p for i, r in enumerate(requests) for k, p in enumerate(r.locality)
                if locality_key(p.prompt, p.answer) in unedited and k not in rewritten[i]]
        excluded = sum(len(x) for x in rewritten)
        if kept:
            now = locality_predictions(model, tokenizer, kept, batch_size=bs)
            by_kind: dict[str, list[float]] = {}
            for p in kept:
                key = locality_key(p.prompt, p.answer)
                agree = float((now[key] == unedited[key]).float().mean())
                by_kind.setdefault(p.kind or "locality", []).append(agree)
            everything = [v for vs in by_kind.values() for v in vs]
            results.append(_result("locality", everything,
                                   by_kind={k: sum(v) / len(v) for k, v in by_kind.items()},
                                   excluded_rewritten_by_batch=excluded))
            # One metric per kind as well: neighbours and the same subject's other relations
            # measure different things and a table should show them apart.
            for kind, values in sorted(by_kind.items()):
                if context.wants(f"locality_{kind}") or context.wants("locality"):
                    results.append(_result(f"locality_{kind}", values))
    return results
