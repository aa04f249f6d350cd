"""95% intervals: Wilson score intervals for rates, bootstrap percentile intervals otherwise."""

from __future__ import annotations

import math

import pytest

from editmethods import EvalReport, MetricResult
from editmethods.evaluation.reporting import format_result
from editmethods.intervals import bootstrap, metric_interval, wilson


@pytest.mark.parametrize("successes, n, low, high", [
    # reference values of the Wilson score interval at 95% (z = 1.95996)
    (8, 10, 0.4902, 0.9433),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
    (95, 100, 0.8882, 0.9785),
    (1, 2, 0.0945, 0.9055),
])
def test_wilson_known_values(successes, n, low, high):
    w = wilson(successes, n)
    assert (round(w.low, 4), round(w.high, 4)) == (low, high) and w.method == "wilson"


def test_wilson_formula_and_bad_input():
    z = 1.959963984540054
    s, n = 37, 120
    p = s / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    w = wilson(s, n)
    assert w.low == pytest.approx(centre - half, abs=1e-12)
    assert w.high == pytest.approx(centre + half, abs=1e-12)
    assert wilson(s, n, level=0.99).low < w.low  # wider at 99%
    with pytest.raises(ValueError):
        wilson(3, 2)
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_bootstrap_percentile_interval():
    assert bootstrap([2.5] * 10) == bootstrap([2.5] * 10, statistic="median")
    assert (bootstrap([2.5] * 10).low, bootstrap([2.5] * 10).high) == (2.5, 2.5)
    # the mean of 400 values 0..399 has standard error ~5.77: the interval is about ±11.3
    values = list(range(400))
    b = bootstrap(values)
    assert b.method == "bootstrap" and b.low < 199.5 < b.high
    assert b.high - b.low == pytest.approx(2 * 1.96 * math.sqrt((400 ** 2 - 1) / 12 / 400), rel=0.1)
    assert bootstrap(values) == b  # seeded: the same interval every time
    assert bootstrap(values, seed=1) != b
    m = bootstrap(values, statistic="median")
    assert m.low < 199.5 < m.high
    with pytest.raises(ValueError):
        bootstrap([])
    with pytest.raises(ValueError):
        bootstrap([1.0], statistic="mode")


def test_which_interval_a_metric_gets():
    binary = MetricResult("efficacy", 0.75, "counterfact", 4, per_case=[1, 1, 1, 0])
    assert metric_interval(binary) == wilson(3, 4)
    fractional = MetricResult("paraphrase", 0.625, "counterfact", 4, per_case=[1, 0.5, 0.5, 0.5])
    assert metric_interval(fractional).method == "bootstrap"
    magnitude = MetricResult("efficacy_magnitude", 0.5, "counterfact", 2, per_case=[0.0, 1.0])
    assert metric_interval(magnitude).method == "bootstrap"  # not a rate, although 0/1 values
    seconds = MetricResult("seconds_per_edit", 2.0, "cost", 3, per_case=[1.0, 2.0, 9.0],
                           details={"statistic": "median"})
    assert metric_interval(seconds) == bootstrap([1.0, 2.0, 9.0], statistic="median")
    assert metric_interval(MetricResult("score", 0.9, "counterfact", 10)) is None  # no cases
    assert metric_interval(MetricResult("efficacy", 1.0, "counterfact", 1, per_case=[1])) is None


def test_intervals_in_tables_and_json():
    report = EvalReport((MetricResult("efficacy", 0.8, "counterfact", 10, per_case=[1] * 8 + [0] * 2),
                         MetricResult("score", 0.9, "counterfact", 10)))
    assert format_result(report["efficacy"]) == "80.0 [49.0, 94.3]"
    assert format_result(report["score"]) == "90.0"
    doc = report.to_dict()
    ci = doc["counterfact"]["efficacy"]["ci"]
    assert ci["method"] == "wilson" and round(ci["low"], 4) == 0.4902 and ci["level"] == 0.95
    assert doc["counterfact"]["score"]["ci"] is None
    assert "per_case" not in doc["counterfact"]["efficacy"]
    again = EvalReport.from_dict(report.to_dict(per_case=True))
    assert again["efficacy"].per_case == report["efficacy"].per_case
