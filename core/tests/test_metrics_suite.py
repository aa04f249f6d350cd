"""The metric plugins: CounterFact probability comparisons, exact-match, fluency, merging."""

from __future__ import annotations

import math

import attrs
import pytest

from editmethods import Editor, EditRequest, EvalReport, MetricResult, PromptAnswer
from editmethods.evaluation.benchmarking import evaluate_method, merge_reports
from editmethods.evaluation.metrics.counterfact import harmonic_mean
from editmethods.evaluation.metrics.fluency import ngram_entropy_of
from editmethods.fingerprint import model_fingerprint
from editmethods.plugins import Plugins
from editmethods.testing import tiny_model, tiny_tokenizer


def req(**kw) -> EditRequest:
    base = dict(prompt="The capital of France is", subject="France", target_new="Rome",
                ground_truth="Paris", rephrase_prompts=["France's capital is"],
                locality=[PromptAnswer("The capital of Spain is", "Madrid", "neighborhood"),
                          PromptAnswer("Danielle Darrieux speaks", "French", "neighborhood"),
                          PromptAnswer("France is", "Italy", "relation_specificity")],
                portability=[PromptAnswer("The Colosseum is in", "Rome", "portability")],
                generation_prompts=["France is"], case_id=1)
    base.update(kw)
    return EditRequest(**base)


@pytest.fixture(scope="module")
def editor() -> Editor:
    plugins = Plugins(entry_points=False)
    return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)


def test_counterfact_success_is_a_comparison_of_mean_nll(editor):
    a = req()
    swapped = attrs.evolve(a, target_new="Paris", ground_truth="Rome")
    ra = editor.evaluate([a], metrics=["efficacy", "paraphrase", "efficacy_magnitude"])
    rb = editor.evaluate([swapped], metrics=["efficacy", "paraphrase", "efficacy_magnitude"])
    assert {r.protocol for r in ra} == {"counterfact"}
    # swapping new and true flips every comparison and the sign of the magnitude
    assert ra["efficacy"].value + rb["efficacy"].value == 1.0
    assert ra["paraphrase"].value + rb["paraphrase"].value == 1.0
    assert math.isclose(ra["efficacy_magnitude"].value, -rb["efficacy_magnitude"].value, abs_tol=1e-9)
    assert (ra["efficacy_magnitude"].value > 0) == (ra["efficacy"].value == 1.0)


def test_counterfact_neighborhood_and_score(editor):
    report = editor.evaluate([req()], metrics=["efficacy", "paraphrase", "neighborhood", "score",
                                               "neighborhood_magnitude"])
    n = report["neighborhood"]
    assert n.details["prompts"] == 2 and n.value in (0.0, 0.5, 1.0)
    expected = harmonic_mean([report[m].value for m in ("efficacy", "paraphrase", "neighborhood")])
    assert report["score"].value == pytest.approx(expected)


def test_a_neighbour_that_the_batch_rewrites_is_not_counted_as_spill_over(editor):
    # "The capital of Spain is → Madrid" is a neighbour of the France edit; a second request of
    # the batch rewrites Spain's capital, so that prompt is meant to change and is left out.
    a = req()
    spain = req(prompt="The capital of Spain is", subject="Spain", target_new="Lisbon",
                ground_truth="Madrid", rephrase_prompts=[], case_id=2,
                locality=[PromptAnswer("Spain is", "Madrid", "relation_specificity")])
    # The France request's relation-specificity pair about France answers "Italy": no other
    # request rewrites a fact of France with that old object, so it stays.
    metrics = ["neighborhood", "locality", "relation_specificity"]
    alone = editor.evaluate([a], metrics=metrics)
    both = editor.evaluate([a, spain], metrics=metrics)
    n = both["neighborhood"]
    assert alone["neighborhood"].details["prompts"] == 2
    assert n.details["prompts"] == 1 and n.details["excluded_rewritten_by_batch"] == 1
    # One prompt is left: a case scores 0 or 1, and the value with it counted lies between.
    assert n.value in (0.0, 1.0) and 0.0 <= n.details["value_including_rewritten"] <= 1.0
    assert "excluded_rewritten_by_batch" not in alone["neighborhood"].details
    # The Spain request's own pair (its subject, its own old object) is not excluded: a
    # request never excludes its own pairs.
    assert both["relation_specificity"].details["excluded_rewritten_by_batch"] == 0
    assert both["relation_specificity"].details["prompts"] == 2


def test_the_unedited_baseline_groups_requests_as_the_mode_does(editor):
    from editmethods.evaluation.benchmarking import evaluate_unedited

    a = req()
    spain = req(prompt="The capital of Spain is", subject="Spain", target_new="Lisbon",
                ground_truth="Madrid", rephrase_prompts=[], locality=[], case_id=2)
    single = evaluate_unedited(editor, [a, spain], metrics=["neighborhood"])
    batch = evaluate_unedited(editor, [a, spain], mode="batch", metrics=["neighborhood"])
    # one at a time nothing is rewritten by another request; together the Spain neighbour is
    assert single["neighborhood"].details["prompts"] == 2
    assert batch["neighborhood"].details["prompts"] == 1
    assert "value_including_rewritten" not in single["neighborhood"].details


def test_rewritten_pairs_need_the_whole_subject_and_the_old_object():
    from editmethods.evaluation.metrics.overlap import rewritten_by_batch

    a = req(locality=[PromptAnswer("The capital of Spain is", "Madrid", "neighborhood"),
                      PromptAnswer("The capital of Spainland is", "Madrid", "neighborhood"),
                      PromptAnswer("The largest city of Spain is", "Barcelona", "neighborhood")])
    spain = req(prompt="The capital of Spain is", subject="Spain", target_new="Lisbon",
                ground_truth=" madrid ", locality=[])
    assert rewritten_by_batch([a, spain]) == [{0}, set()]
    # without ground truth nothing can be told
    assert rewritten_by_batch([a, attrs.evolve(spain, ground_truth=None)]) == [set(), set()]


def test_requests_without_ground_truth_get_no_counterfact_metrics(editor):
    report = editor.evaluate([req(ground_truth=None)])
    assert not any(r.protocol == "counterfact" for r in report)
    assert "reliability" in report  # the teacher-forced protocol still measures it


def test_protocols_are_kept_apart(editor):
    report = editor.evaluate([req()])
    protocols = report.to_dict()
    assert {"counterfact", "teacher-forced", "exact-match", "generation"} <= set(protocols)
    assert "relation_specificity" in protocols["exact-match"]
    assert "portability_exact" in protocols["exact-match"]
    assert protocols["generation"]["ngram_entropy"]["value"] > 0


def test_metrics_are_opt_in(editor):
    report = editor.evaluate([req()], metrics=["relation_specificity"])
    assert [r.name for r in report] == ["relation_specificity"]


def test_ngram_entropy_matches_definition():
    # bigrams of "a b c a b c": ab ×2, bc ×2, ca ×1 -> H2; trigrams: abc ×2, bca, cab -> H3
    h2 = -(2 * (0.4 * math.log2(0.4)) + 0.2 * math.log2(0.2))
    h3 = -(0.5 * math.log2(0.5) + 2 * (0.25 * math.log2(0.25)))
    assert ngram_entropy_of("a b c a b c") == pytest.approx((2 / 3 * h2 + 4 / 3 * h3) / 2)
    assert ngram_entropy_of("Rome Rome Rome Rome Rome") == 0.0


def test_merge_pools_cases_and_recomputes_the_harmonic_mean():
    def rep(e, p, n):
        return EvalReport([
            MetricResult("efficacy", e, "counterfact", 1, per_case=[e]),
            MetricResult("paraphrase", p, "counterfact", 1, per_case=[p]),
            MetricResult("neighborhood", n, "counterfact", 1, per_case=[n]),
            MetricResult("score", harmonic_mean([e, p, n]), "counterfact", 1,
                         details={"harmonic_mean_of": ["efficacy", "paraphrase", "neighborhood"]}),
            MetricResult("reliability", e, "teacher-forced", 1, per_case=[e]),
        ])
    merged = merge_reports([rep(1.0, 1.0, 0.0), rep(1.0, 0.5, 1.0)])
    assert merged["efficacy"].value == 1.0 and merged["neighborhood"].value == 0.5
    assert merged["score"].value == pytest.approx(harmonic_mean([1.0, 0.75, 0.5]))
    assert merged["reliability"].n == 2


def test_runner_modes_restore_the_model_and_report_cost():
    from editmethods.testing import AddMethod, make_plugins

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=make_plugins(AddMethod()))
    before = model_fingerprint(editor.model, buffers=True)
    reqs = [req(), req(prompt="Miles Davis plays the", subject="Miles Davis", target_new="piano",
                       ground_truth="trumpet", rephrase_prompts=[], case_id=2)]
    for mode in ("single", "sequential", "batch"):
        run = evaluate_method(editor, "add", None, reqs, mode=mode, progress=False)
        assert run.restored and not run.failures and run.n == 2
        cost = run.report.to_dict()["cost"]
        assert cost["seconds_per_edit"]["value"] > 0 and cost["peak_memory_mb"]["value"] >= 0
        assert run.report["reliability"].n == 2
    assert model_fingerprint(editor.model, buffers=True) == before


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_batched_greedy_generation_equals_one_at_a_time(model_type):
    from editmethods.scoring import greedy_continue, greedy_continue_batched

    model, tok = tiny_model(model_type), tiny_tokenizer()
    prompts = ["The capital of France is", "Rome", "Miles Davis plays the", "The Eiffel Tower is in Paris and"]
    assert greedy_continue_batched(model, tok, prompts, max_new_tokens=10, batch_size=3) == \
        greedy_continue(model, tok, prompts, max_new_tokens=10)


@pytest.mark.parametrize("module", ["editmethods.evaluation.loaders", "editmethods.evaluation.metrics.fluency",
                                    "editmethods.evaluation.metrics.counterfact", "editmethods.evaluation.reporting",
                                    "editmethods.evaluation.metrics.overlap", "editmethods.evaluation.metrics.wild",
                                    "editmethods.intervals"])
def test_module_examples_run(module):
    import doctest
    import importlib

    failures, _ = doctest.testmod(importlib.import_module(module),
                                  optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def test_wild_answers_are_compared_by_their_first_words():
    from editmethods.evaluation.metrics.wild import agrees, answer_of, normalized_words, says

    assert normalized_words("Saint-Étienne, FRANCE.") == ["saint", "étienne", "france"]
    assert answer_of("  Rome.\nThe capital") == "Rome."
    assert says(" Rome, Italy", "Rome") and says(" ROME.", "rome") and says(" St. Louis", "St. Louis")
    assert says(" New York City", "New York") and not says(" New Jersey", "New York")
    assert not says(" Romeo", "Rome") and not says("\nRome", "Rome") and not says(" the Rome", "Rome")
    assert says(" ?", "?") and not says(" !", "?")  # no words: the text itself
    assert agrees(" Madrid, of course", " Madrid.", "Madrid")
    assert not agrees(" Rome", " Madrid", "Madrid")
    assert agrees(" Buenos Aires is", " Buenos Aires!", "Buenos Aires")


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_greedy_tokens_take_one_budget_per_prompt_and_stop_early(model_type):
    from editmethods.scoring import greedy_continue, greedy_tokens_batched

    model, tok = tiny_model(model_type), tiny_tokenizer()
    prompts = ["The capital of France is", "Rome", "Miles Davis plays the"]
    budgets = [3, 7, 5]
    rows = greedy_tokens_batched(model, tok, prompts, max_new_tokens=budgets, batch_size=2)
    alone = [tok(greedy_continue(model, tok, [p], max_new_tokens=b)[0], add_special_tokens=False).input_ids
             for p, b in zip(prompts, budgets)]
    assert [len(r) for r in rows] == budgets
    assert [tok.decode(r) for r in rows] == [tok.decode(a) for a in alone]
    first = rows[1][1]
    stopped = greedy_tokens_batched(model, tok, prompts, max_new_tokens=budgets,
                                    stop=lambda t: t == first)
    assert stopped[1] == rows[1][: rows[1].index(first) + 1]


def test_wild_locality_needs_the_unedited_answers_and_the_baseline_leaves_it_out():
    from editmethods.evaluation.benchmarking import evaluate_unedited

    editor = Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=Plugins(entry_points=False))
    r = req()
    assert "gen_locality" not in editor.evaluate([r], metrics=["gen_locality"])
    editor.remember_unedited([r], generation=True)
    same = editor.evaluate([r], metrics=["gen_efficacy", "gen_locality"])
    # unedited, the neighbours say what they said; only the neighbourhood kind is scored
    assert same["gen_locality"].value == 1.0 and same["gen_locality"].details["prompts"] == 2
    assert same["gen_efficacy"].protocol == "wild"
    baseline = evaluate_unedited(editor, [r], metrics=["gen_efficacy", "gen_locality"])
    assert "gen_efficacy" in baseline and "gen_locality" not in baseline
