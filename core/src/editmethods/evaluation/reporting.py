"""Markdown tables and a PNG chart of benchmark results.

Every column names its protocol; numbers of different protocols sit side by side in the
headline table but are never combined. Rates (success, accuracy, agreement) are shown as
percentages, fluency in bits, cost in seconds and MiB, each with its 95% interval in brackets
where it has one (``95.0 [91.2, 97.3]``; :mod:`editmethods.intervals`); the chart draws the
intervals as error bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from editmethods.intervals import metric_interval

if TYPE_CHECKING:  # pragma: no cover
    from editmethods.eval_report import EvalReport
    from editmethods.evaluation.bench_suite import SuiteResult
    from editmethods.evaluation.benchmarking import BenchmarkResult
    from editmethods.types import MetricResult

#: Headline columns: (protocol, metric, header).
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("counterfact", "efficacy", "Efficacy"),
    ("counterfact", "paraphrase", "Paraphrase"),
    ("counterfact", "neighborhood", "Neighborhood"),
    ("counterfact", "score", "Score"),
    ("teacher-forced", "reliability", "Reliability"),
    ("teacher-forced", "generalization", "Generalization"),
    ("teacher-forced", "locality_neighborhood", "Locality (others)"),
    ("teacher-forced", "locality_relation_specificity", "Locality (same subject)"),
    ("teacher-forced", "locality_nq", "Locality (NQ)"),
    ("teacher-forced", "portability", "Portability"),
    ("exact-match", "relation_specificity", "Relation spec."),
    ("wild", "gen_efficacy", "Efficacy"),
    ("wild", "gen_paraphrase", "Paraphrase"),
    ("wild", "gen_locality", "Locality"),
    ("generation", "ngram_entropy", "Fluency"),
    ("cost", "seconds_per_edit", "s/edit"),
    ("cost", "peak_memory_mb", "Peak MiB"),
)
PROTOCOL_ORDER = ("counterfact", "teacher-forced", "exact-match", "wild", "generation", "cost")
#: Protocols drawn as panels of rates in the chart.
RATE_PANELS = ("counterfact", "teacher-forced", "exact-match", "wild")
PROTOCOL_NOTES = {
    "counterfact": "CounterFact probability comparisons as in ROME/MEMIT (P[new] vs P[true] by "
                   "mean token NLL; success rates and magnitudes; score = harmonic mean of "
                   "efficacy, paraphrase and neighborhood success)",
    "teacher-forced": "EasyEdit's teacher-forced target-token accuracy (locality = agreement "
                      "with the unedited model's predictions)",
    "exact-match": "greedy answer equals the true answer on every token (relation "
                   "specificity: the same subject's other relations)",
    "wild": "greedy generation without teacher forcing (WILD, \"The Mirage of Model Editing\", "
            "2025); a hit when the generated "
            "answer's first words are the target's (case, spaces and punctuation ignored); "
            "locality = neighbour prompts still answered as the unedited model answered them",
    "generation": "ROME's weighted bi/tri-gram entropy of greedy generations (bits)",
    "cost": "median over edits of the wall seconds per edit and of the peak memory allocated "
            "during the edit above what was allocated before it (CUDA allocator, or malloc'd "
            "bytes sampled every 2 ms on CPU)",
}
_SHORT = {"counterfact": "CF", "teacher-forced": "TF", "exact-match": "EM", "wild": "WILD",
          "generation": "gen", "cost": "cost"}
INTERVALS_NOTE = ("95% intervals in brackets: Wilson score intervals for rates over cases that "
                  "score 0 or 1, bootstrap percentile intervals (2,000 resamples of the cases) "
                  "for other rates, means and medians")


def format_value(protocol: str, name: str, value: float | None) -> str:
    """A metric value as the tables show it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if protocol == "generation":
        return f"{value:.2f}"
    if protocol == "cost":
        return f"{value:.3g}" if name == "seconds_per_edit" else f"{value:.1f}"
    return f"{100 * value:.1f}"


def format_result(result: MetricResult | None, *, interval: bool = True) -> str:
    """A metric as the tables show it: its value and, where it has one, its 95% interval."""
    if result is None:
        return "—"
    text = format_value(result.protocol, result.name, result.value)
    ci = metric_interval(result) if interval and text != "—" else None
    if ci is None:
        return text
    low = format_value(result.protocol, result.name, ci.low)
    high = format_value(result.protocol, result.name, ci.high)
    return f"{text} [{low}, {high}]"


def _metric(report: EvalReport | None, protocol: str, name: str) -> MetricResult | None:
    if report is None:
        return None
    for r in report:
        if r.protocol == protocol and r.name == name:
            return r
    return None


def _value(report: EvalReport | None, protocol: str, name: str) -> float | None:
    found = _metric(report, protocol, name)
    return found.value if found is not None else None


def _rows(result: BenchmarkResult) -> list[tuple[str, EvalReport]]:
    return [("unedited model", result.unedited)] + [(r.label, r.report) for r in result.runs]


def _cases(result: BenchmarkResult) -> list[str] | None:
    """The "Cases" column (n and mode per row) when the rows differ in them, else ``None``."""
    rows = [(result.n, result.mode)] + [(r.n, r.mode) for r in result.runs]
    if len(set(rows)) <= 1:
        return None
    return [f"{n}" if mode == "single" else f"{n} {mode}" for n, mode in rows]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def headline_table(result: BenchmarkResult, *, intervals: bool = True) -> str:
    """One row per method (and the unedited model), the main metric of each protocol, with
    95% intervals (``intervals=False``: values only); a "Cases" column when the rows differ
    in their number of cases or mode."""
    rows = _rows(result)
    columns = [c for c in HEADLINE if any(_value(rep, c[0], c[1]) is not None for _, rep in rows)]
    cases = _cases(result)
    header = (["Method"] + (["Cases"] if cases else [])
              + [f"{h} ({_SHORT[p]})" for p, _, h in columns])
    body = [[label] + ([cases[i]] if cases else [])
            + [format_result(_metric(rep, p, m), interval=intervals) for p, m, _ in columns]
            for i, (label, rep) in enumerate(rows)]
    return "\n".join(_table(header, body))


def protocol_tables(result: BenchmarkResult) -> str:
    """One table per protocol with every metric it reported."""
    rows = _rows(result)
    protocols: dict[str, list[str]] = {}
    for _, rep in rows:
        for r in rep:
            names = protocols.setdefault(r.protocol, [])
            if r.name not in names:
                names.append(r.name)
    order = [p for p in PROTOCOL_ORDER if p in protocols] + sorted(set(protocols) - set(PROTOCOL_ORDER))
    out = []
    for protocol in order:
        names = protocols[protocol]
        out.append(f"#### {protocol}\n\n{PROTOCOL_NOTES.get(protocol, '')}\n")
        body = []
        for label, rep in rows:
            found = [_metric(rep, protocol, n) for n in names]
            if all(v is None for v in found):
                continue
            body.append([label] + [format_result(v) for v in found])
        out.append("\n".join(_table(["Method"] + names, body)) + "\n")
    return "\n".join(out)


def describe(result: BenchmarkResult) -> str:
    """The line above a table: model, data, cases, mode, device."""
    records = (f" records [{result.offset}, {result.offset + result.n})" if result.offset else "")
    return (f"Model `{result.model}`, data `{result.data}`{records}, {result.n} cases, mode "
            f"`{result.mode}`, device `{result.device}`. Rates in %.")


def _notes(result: BenchmarkResult) -> list[str]:
    lines = []
    for run in result.runs:
        if run.failures:
            lines.append(f"- {run.label}: {len(run.failures)} of {run.n} edits failed "
                         f"(left out): {run.failures[0]['error']}")
        if not run.restored:
            lines.append(f"- {run.label}: WARNING: the model was not restored bit for bit "
                         "after the run")
    for label, reason in result.skipped.items():
        lines.append(f"- {label}: skipped: {reason}")
    return lines


def protocols_line(protocols: Sequence[str] = PROTOCOL_ORDER) -> str:
    return ("Protocols: " + "; ".join(f"**{_SHORT[p]}** = {PROTOCOL_NOTES[p]}" for p in protocols)
            + ". " + INTERVALS_NOTE + ".")


def benchmark_summary(result: BenchmarkResult) -> str:
    """The description line, the headline table and the notes on failed or skipped runs."""
    notes = _notes(result)
    lines = [describe(result), "", headline_table(result)] + ([""] + notes if notes else [])
    return "\n".join(lines)


def benchmark_markdown(result: BenchmarkResult) -> str:
    """The whole report: headline table, notes, per-protocol tables."""
    lines = [describe(result), "", headline_table(result), "", protocols_line(), *_notes(result),
             "", "<details><summary>All metrics by protocol</summary>", "",
             protocol_tables(result), "</details>", ""]
    return "\n".join(lines)


def suite_summary(suite: SuiteResult) -> str:
    """Each dataset's summary (headed by its name when there are several) and the protocols."""
    parts = []
    for d in suite.datasets:
        head = [f"**{d.name}**", ""] if len(suite.datasets) > 1 else []
        parts.append("\n".join(head + [benchmark_summary(d.result)]))
    return "\n\n".join(parts + [protocols_line()])


def suite_markdown(suite: SuiteResult) -> str:
    """The whole report of every dataset: summaries, protocols, per-protocol tables."""
    if len(suite.datasets) == 1:
        return benchmark_markdown(suite.datasets[0].result)
    lines = [suite_summary(suite), ""]
    for d in suite.datasets:
        lines += [f"<details><summary>{d.name}: all metrics by protocol</summary>", "",
                  protocol_tables(d.result), "</details>", ""]
    return "\n".join(lines)


def _panels(results: Sequence[BenchmarkResult]) -> list[tuple[str, list[tuple[str, str]]]]:
    panels = []
    for protocol in RATE_PANELS:
        cols = [(m, h) for p, m, h in HEADLINE if p == protocol
                and any(_value(rep, p, m) is not None for res in results for _, rep in _rows(res))]
        if cols:
            panels.append((protocol, cols))
    return panels


def _draw(ax: Any, result: BenchmarkResult, protocol: str, cols: list[tuple[str, str]]) -> None:
    rows = _rows(result)
    width = 0.8 / len(rows)
    for i, (label, rep) in enumerate(rows):
        found = [_metric(rep, protocol, m) for m, _ in cols]
        heights, low, high = [], [], []
        for f in found:
            v = f.value if f is not None and not math.isnan(f.value) else 0.0
            ci = metric_interval(f) if f is not None else None
            heights.append(100 * v)
            low.append(100 * (v - ci.low) if ci else 0.0)
            high.append(100 * (ci.high - v) if ci else 0.0)
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(cols))]
        ax.bar(xs, heights, width, label=label, color="0.75" if i == 0 else None,
               yerr=[low, high], error_kw={"elinewidth": 0.7, "capsize": 1.5, "ecolor": "0.2"})
    ax.set_xticks(range(len(cols)), [h for _, h in cols], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")


def _chart(results: Sequence[tuple[str, BenchmarkResult]], title: str, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = [p for p, _ in _panels([r for _, r in results])]
    if not protocols:
        raise ValueError("nothing to plot: the results have no rate metrics")
    fig, axes = plt.subplots(len(results), len(protocols), squeeze=False,
                             figsize=(4.2 * len(protocols), 3.6 * len(results)))
    for row, (name, result) in zip(axes, results):
        panels = dict(_panels([result]))  # this dataset's own columns
        for ax, protocol in zip(row, protocols):
            if protocol not in panels:
                ax.axis("off")
                continue
            _draw(ax, result, protocol, panels[protocol])
            ax.set_title(protocol, fontsize=10)
        row[0].set_ylabel(f"{name}\n%" if name else "%")
        drawn = [ax for ax, p in zip(row, protocols) if p in panels]
        drawn[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def benchmark_chart(result: BenchmarkResult, path: str | Path) -> Path:
    """A PNG with one panel per rate protocol: grouped bars, one colour per method, 95%
    intervals as error bars."""
    return _chart([("", result)], f"{result.model}: {result.n} cases, {result.mode} edits", path)


def suite_chart(suite: SuiteResult, path: str | Path) -> Path:
    """One row of :func:`benchmark_chart` panels per dataset, in one PNG."""
    results = [(d.name if len(suite.datasets) > 1 else "", d.result) for d in suite.datasets
               if d.result.runs]
    return _chart(results, f"{suite.model}: 95% intervals as error bars", path)


def markers(name: str) -> tuple[str, str]:
    """The comment lines between which :func:`splice_marked` writes the block ``name``."""
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def splice_marked(text: str, name: str, content: str) -> str:
    r"""``text`` with what lies between the markers of ``name`` replaced by ``content``.

    >>> doc = "intro\n<!-- bench:x -->\nold\n<!-- /bench:x -->\nend\n"
    >>> print(splice_marked(doc, "x", "new table"), end="")
    intro
    <!-- bench:x -->
    new table
    <!-- /bench:x -->
    end

    :raises ValueError: when the markers are missing, repeated or out of order.
    """
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"expected one {start} line and one {end} line, found "
                         f"{text.count(start)} and {text.count(end)}")
    head, rest = text.split(start, 1)
    if end not in rest:
        raise ValueError(f"{end} comes before {start}")
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def describe_run(report: EvalReport, *, title: str = "") -> str:
    """A plain-text report of one run (``editmethods eval``)."""
    lines = [title] if title else []
    for protocol in [p for p in PROTOCOL_ORDER] + sorted({r.protocol for r in report} - set(PROTOCOL_ORDER)):
        results = [r for r in report if r.protocol == protocol]
        if not results:
            continue
        lines.append(f"[{protocol}]")
        for r in results:
            unit = "%" if protocol not in ("generation", "cost") else ""
            ci = metric_interval(r)
            bounds = (f"  [{format_value(protocol, r.name, ci.low)}, "
                      f"{format_value(protocol, r.name, ci.high)}]" if ci else "")
            lines.append(f"  {r.name:<32} {format_value(protocol, r.name, r.value):>8}{unit}"
                         f"{bounds}  (n={r.n})")
    return "\n".join(lines)


__all__: list[Any] = ["HEADLINE", "benchmark_chart", "benchmark_markdown", "benchmark_summary",
                      "describe", "describe_run", "format_result", "format_value",
                      "headline_table", "markers", "protocol_tables", "protocols_line",
                      "splice_marked",
                      "suite_chart", "suite_markdown", "suite_summary"]
