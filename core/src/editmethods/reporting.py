"""Markdown tables and a PNG chart of benchmark results.

Every column names its protocol; numbers of different protocols sit side by side in the
headline table but are never combined. Rates (success, accuracy, agreement) are shown as
percentages, fluency in bits, cost in seconds and MiB.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from editmethods.benchmarking import BenchmarkResult
    from editmethods.evaluation import EvalReport

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
    ("teacher-forced", "portability", "Portability"),
    ("exact-match", "relation_specificity", "Relation spec."),
    ("generation", "ngram_entropy", "Fluency"),
    ("cost", "seconds_per_edit", "s/edit"),
    ("cost", "peak_memory_mb", "Peak MiB"),
)
PROTOCOL_ORDER = ("counterfact", "teacher-forced", "exact-match", "generation", "cost")
PROTOCOL_NOTES = {
    "counterfact": "CounterFact probability comparisons as in ROME/MEMIT (P[new] vs P[true] by "
                   "mean token NLL; success rates and magnitudes; score = harmonic mean of "
                   "efficacy, paraphrase and neighborhood success)",
    "teacher-forced": "EasyEdit's teacher-forced target-token accuracy (locality = agreement "
                      "with the unedited model's predictions)",
    "exact-match": "greedy answer equals the true answer on every token (relation "
                   "specificity: the same subject's other relations)",
    "generation": "ROME's weighted bi/tri-gram entropy of greedy generations (bits)",
    "cost": "wall seconds per edit; peak memory allocated during the edit above what was allocated before it (CUDA allocator, or malloc'd bytes sampled every 2 ms on CPU)",
}
_SHORT = {"counterfact": "CF", "teacher-forced": "TF", "exact-match": "EM",
          "generation": "gen", "cost": "cost"}


def format_value(protocol: str, name: str, value: float | None) -> str:
    """A metric value as the tables show it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if protocol == "generation":
        return f"{value:.2f}"
    if protocol == "cost":
        return f"{value:.3g}" if name == "seconds_per_edit" else f"{value:.1f}"
    return f"{100 * value:.1f}"


def _value(report: EvalReport | None, protocol: str, name: str) -> float | None:
    if report is None:
        return None
    for r in report:
        if r.protocol == protocol and r.name == name:
            return r.value
    return None


def _rows(result: BenchmarkResult) -> list[tuple[str, EvalReport]]:
    return [("unedited model", result.unedited)] + [(r.label, r.report) for r in result.runs]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def headline_table(result: BenchmarkResult) -> str:
    """One row per method (and the unedited model), the main metric of each protocol."""
    rows = _rows(result)
    columns = [c for c in HEADLINE if any(_value(rep, c[0], c[1]) is not None for _, rep in rows)]
    header = ["Method"] + [f"{h} ({_SHORT[p]})" for p, _, h in columns]
    body = [[label] + [format_value(p, m, _value(rep, p, m)) for p, m, _ in columns]
            for label, rep in rows]
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
            values = [_value(rep, protocol, n) for n in names]
            if all(v is None for v in values):
                continue
            body.append([label] + [format_value(protocol, n, v) for n, v in zip(names, values)])
        out.append("\n".join(_table(["Method"] + names, body)) + "\n")
    return "\n".join(out)


def benchmark_markdown(result: BenchmarkResult) -> str:
    """The whole report: headline table, notes, per-protocol tables."""
    lines = [
        f"Model `{result.model}`, data `{result.data}`, {result.n} cases, mode `{result.mode}`, "
        f"device `{result.device}`. Rates in %.",
        "",
        headline_table(result),
        "",
        "Protocols: " + "; ".join(f"**{_SHORT[p]}** = {PROTOCOL_NOTES[p]}" for p in PROTOCOL_ORDER) + ".",
    ]
    for run in result.runs:
        if run.failures:
            lines.append(f"- {run.label}: {len(run.failures)} of {run.n} edits failed "
                         f"(left out): {run.failures[0]['error']}")
        if not run.restored:
            lines.append(f"- {run.label}: WARNING: the model was not restored bit for bit after the run")
    for label, reason in result.skipped.items():
        lines.append(f"- {label}: skipped: {reason}")
    lines += ["", "<details><summary>All metrics by protocol</summary>", "",
              protocol_tables(result), "</details>", ""]
    return "\n".join(lines)


def benchmark_chart(result: BenchmarkResult, path: str | Path) -> Path:
    """A PNG with one panel per rate protocol: grouped bars, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(result)
    panels: list[tuple[str, list[tuple[str, str]]]] = []
    for protocol in ("counterfact", "teacher-forced", "exact-match"):
        cols = [(m, h) for p, m, h in HEADLINE if p == protocol
                and any(_value(rep, p, m) is not None for _, rep in rows)]
        if cols:
            panels.append((protocol, cols))
    if not panels:
        raise ValueError("nothing to plot: the results have no rate metrics")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    width = 0.8 / len(rows)
    for ax, (protocol, cols) in zip(axes[0], panels):
        for i, (label, rep) in enumerate(rows):
            values = [_value(rep, protocol, m) for m, _ in cols]
            xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(cols))]
            ax.bar(xs, [100 * v if v is not None else 0 for v in values], width, label=label,
                   color="0.75" if i == 0 else None)
        ax.set_xticks(range(len(cols)), [h for _, h in cols], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(protocol, fontsize=10)
        ax.set_ylabel("%")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{result.model}: {result.n} cases, {result.mode} edits", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
            lines.append(f"  {r.name:<32} {format_value(protocol, r.name, r.value):>8}{unit}  (n={r.n})")
    return "\n".join(lines)


__all__: list[Any] = ["HEADLINE", "benchmark_chart", "benchmark_markdown", "describe_run",
                      "format_value", "headline_table", "protocol_tables"]
