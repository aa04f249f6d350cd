"""Whether the model still gives the right answer: exact match of the greedy answer.

Protocol ``exact-match``. A prompt scores 1 when, teacher forced, the model's argmax is the
expected token at every position of the answer (so greedy decoding reproduces the whole
answer), else 0; a case scores the mean over its prompts, a metric the mean over cases.

- ``relation_specificity``: the locality pairs of kind ``"relation_specificity"``, the same
  subject's *other* relations with their true objects (KnowEdit's relation specificity): a
  good edit of where someone was born does not change what they do for a living. This is
  measured against the truth, not against the unedited model (the teacher-forced protocol's
  ``locality_relation_specificity`` measures agreement with the unedited model instead).
  A pair about a fact another request of the same batch rewrites (the same person's other
  edited fact) is left out and counted in the details (``editmethods.evaluation.metrics.overlap``).
- ``portability_exact``: the portability pairs (e.g. two-hop questions whose answer follows
  from the new fact).
"""

from __future__ import annotations

from collections.abc import Sequence

from editmethods.evaluation.metrics.overlap import rewritten_by_batch
from editmethods.hookspecs import hookimpl
from editmethods.scoring import score_targets
from editmethods.types import EditRequest, EvalContext, MetricResult, PromptAnswer

PROTOCOL = "exact-match"
#: The names this plugin computes.
METRIC_NAMES = ("relation_specificity", "portability_exact")


def _pairs(request: EditRequest, name: str, rewritten: set[int]) -> list[PromptAnswer]:
    if name == "relation_specificity":
        return [p for k, p in enumerate(request.locality)
                if p.kind == "relation_specificity" and k not in rewritten]
    return list(request.portability)


@hookimpl
def evaluate(model, tokenizer, requests: Sequence[EditRequest], context: EvalContext):
    results = []
    rewritten = rewritten_by_batch(requests)
    for name in ("relation_specificity", "portability_exact"):
        if not context.wants(name):
            continue
        owners, pairs = [], []
        for i, r in enumerate(requests):
            for p in _pairs(r, name, rewritten[i]):
                owners.append(i)
                pairs.append(p)
        if not pairs:
            continue
        s = score_targets(model, tokenizer, [p.prompt for p in pairs],
                          [" " + p.answer.strip() for p in pairs], batch_size=context.batch_size)
        exact = [float(bool((pred == tgt).all())) for pred, tgt in zip(s.predictions, s.targets)]
        by_case: dict[int, list[float]] = {}
        for i, v in zip(owners, exact):
            by_case.setdefault(i, []).append(v)
        per_case = [sum(v) / len(v) for _, v in sorted(by_case.items())]
        details: dict[str, object] = {"prompts": len(pairs)}
        if name == "relation_specificity":
            details["excluded_rewritten_by_batch"] = sum(
                1 for i, r in enumerate(requests) for k in rewritten[i]
                if r.locality[k].kind == "relation_specificity")
        results.append(MetricResult(name, sum(per_case) / len(per_case), PROTOCOL, len(per_case),
                                    per_case=per_case, details=details))
    return results
