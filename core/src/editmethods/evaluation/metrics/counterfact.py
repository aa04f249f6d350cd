"""CounterFact's probability comparisons, as ROME's and MEMIT's evaluation code computes them.

Protocol ``counterfact``. For each prompt the mean per-token negative log-likelihood of the
new and of the true object (teacher forced, after the prompt) is compared:

- ``efficacy``: on the edit prompt, P[new] > P[true] (mean token NLL of new < of true);
- ``paraphrase``: the same on each paraphrase prompt;
- ``neighborhood``: on each neighborhood prompt (another subject whose answer is the old
  object), P[true] > P[new]: the edit did not spill over;
- ``*_magnitude``: the mean of ``exp(-nll_new) - exp(-nll_true)`` (for neighborhood
  ``exp(-nll_true) - exp(-nll_new)``), ROME's "magnitude" columns;
- ``score``: the harmonic mean of efficacy, paraphrase and neighborhood success (MEMIT's S).

As in ROME's ``summarize.py``, a case's score is the mean over its prompts and a metric is the
mean over cases. Requests need ``ground_truth`` (CounterFact's ``target_true``); neighborhood
prompts are the locality pairs of kind ``"neighborhood"``.

When several requests are evaluated together, a neighborhood prompt that asks for the old
object of a fact another request of the batch rewrites (see ``editmethods.evaluation.metrics.overlap``)
is left out of ``neighborhood``: that fact was meant to change. The result's details give how
many prompts were left out and the value with them counted (``value_including_rewritten``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from editmethods.evaluation.metrics.overlap import rewritten_by_batch
from editmethods.hookspecs import hookimpl
from editmethods.scoring import score_targets
from editmethods.types import EditRequest, EvalContext, MetricResult

PROTOCOL = "counterfact"
SUCCESS = ("efficacy", "paraphrase", "neighborhood")
NAMES = SUCCESS + tuple(f"{n}_magnitude" for n in SUCCESS) + ("score",)
#: The names this plugin computes (see ``editmethods.request_checks.metric_names``).
METRIC_NAMES = NAMES


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 when any value is 0 (as scipy's ``hmean`` for non-negative input)."""
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _with_rewritten(kept: dict[int, list[tuple[bool, float]]],
                    rewritten: dict[int, list[tuple[bool, float]]]) -> dict[str, object]:
    """What neighborhood would read with the rewritten prompts counted, and how many there were."""
    merged = {i: kept.get(i, []) + rewritten.get(i, []) for i in set(kept) | set(rewritten)}
    return {"excluded_rewritten_by_batch": sum(len(v) for v in rewritten.values()),
            "value_including_rewritten": _mean([_mean([float(s) for s, _ in v])
                                                for _, v in sorted(merged.items())])}


@hookimpl
def evaluate(model, tokenizer, requests: Sequence[EditRequest], context: EvalContext):
    wanted = [n for n in NAMES if context.wants(n)]
    cases = [r for r in requests if r.ground_truth]
    if not wanted or not cases:
        return []
    rewritten = rewritten_by_batch(cases)
    # (case index, group, prompt, sign, new, true): sign +1 when new should win, -1 when true
    # should. Group "rewritten" holds neighbours that another request of the batch edits.
    items: list[tuple[int, str, str, int, str, str]] = []
    for i, r in enumerate(cases):
        true = r.ground_truth
        assert true is not None  # cases keeps the requests that have one
        items.append((i, "efficacy", r.prompt, 1, r.target_new, true))
        items += [(i, "paraphrase", p, 1, r.target_new, true) for p in r.rephrase_prompts]
        items += [(i, "rewritten" if k in rewritten[i] else "neighborhood", p.prompt, -1,
                   r.target_new, p.answer)
                  for k, p in enumerate(r.locality) if p.kind == "neighborhood"]
    prompts = [it[2] for it in items for _ in (0, 1)]
    targets = [" " + t.strip() for it in items for t in (it[4], it[5])]
    nll = score_targets(model, tokenizer, prompts, targets, batch_size=context.batch_size).mean_nll()
    per: dict[str, dict[int, list[tuple[bool, float]]]] = {g: {} for g in (*SUCCESS, "rewritten")}
    for k, (i, group, _, sign, _, _) in enumerate(items):
        nll_new, nll_true = nll[2 * k], nll[2 * k + 1]
        magnitude = sign * (math.exp(-nll_new) - math.exp(-nll_true))
        success = nll_new < nll_true if sign > 0 else nll_true < nll_new
        per[group].setdefault(i, []).append((success, magnitude))
    results: list[MetricResult] = []
    success_values: dict[str, float] = {}
    for group in SUCCESS:
        case_success = [_mean([float(s) for s, _ in v]) for _, v in sorted(per[group].items())]
        case_magnitude = [_mean([m for _, m in v]) for _, v in sorted(per[group].items())]
        if not case_success:
            continue
        success_values[group] = _mean(case_success)
        n_prompts = sum(len(v) for v in per[group].values())
        details: dict[str, object] = {"prompts": n_prompts}
        if group == "neighborhood" and per["rewritten"]:
            details.update(_with_rewritten(per["neighborhood"], per["rewritten"]))
        if group in wanted:
            results.append(MetricResult(group, success_values[group], PROTOCOL, len(case_success),
                                        per_case=case_success, details=details))
        if f"{group}_magnitude" in wanted:
            results.append(MetricResult(f"{group}_magnitude", _mean(case_magnitude), PROTOCOL,
                                        len(case_magnitude), per_case=case_magnitude))
    if "score" in wanted and len(success_values) == len(SUCCESS):
        results.append(MetricResult(
            "score", harmonic_mean([success_values[g] for g in SUCCESS]), PROTOCOL, len(cases),
            details={"harmonic_mean_of": list(SUCCESS)}))
    return results
