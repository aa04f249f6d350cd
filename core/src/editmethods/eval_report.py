"""The result of ``Editor.evaluate``: metric results grouped by protocol, never averaged across."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from editmethods.types import MetricResult


def _result_tuple(results: Iterable[MetricResult]) -> tuple[MetricResult, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(results)


@attrs.frozen
class EvalReport:
    """Metric results of one evaluation.

    >>> r = EvalReport((MetricResult("reliability", 1.0, "teacher-forced", 1),))
    >>> r["reliability"].value
    1.0
    """

    results: tuple[MetricResult, ...] = attrs.field(converter=_result_tuple)

    def __getitem__(self, name: str) -> MetricResult:
        for result in self.results:
            if result.name == name:
                return result
        have = ", ".join(r.name for r in self.results) or "none"
        raise KeyError(f"no metric {name!r} in this report (have: {have})")

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.results)

    def __iter__(self) -> Iterator[MetricResult]:
        return iter(self.results)

    def to_dict(self, *, per_case: bool = False) -> dict[str, Any]:
        """``{protocol: {metric: {"value", "n", "ci", "details"}}}``, JSON-serializable.

        ``ci`` is the metric's 95% interval (``{"low", "high", "method", "level"}``, see
        :mod:`editmethods.intervals`) or ``None``; ``per_case=True`` adds the per-case values,
        so that :meth:`from_dict` gives the same report back.
        """
        from editmethods.intervals import metric_interval

        out: dict[str, dict[str, Any]] = {}
        for r in self.results:
            ci = metric_interval(r)
            entry: dict[str, Any] = {"value": r.value, "n": r.n,
                                     "ci": ci.to_dict() if ci is not None else None,
                                     "details": dict(r.details)}
            if per_case:
                entry["per_case"] = list(r.per_case)
            out.setdefault(r.protocol, {})[r.name] = entry
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> EvalReport:
        """The report :meth:`to_dict` wrote (per-case values only where it kept them; a value
        written as ``null``, as strict JSON writes NaN, reads as NaN)."""
        results = []
        for protocol, metrics in data.items():
            for name, m in metrics.items():
                value = m.get("value")
                results.append(MetricResult(
                    name, float("nan") if value is None else float(value), protocol, int(m["n"]),
                    per_case=[float("nan") if v is None else float(v) for v in m.get("per_case", ())],
                    details=dict(m.get("details") or {})))
        return cls(tuple(results))

    def format(self) -> str:
        """A plain-text table, one block per protocol."""
        lines = []
        for protocol, metrics in self.to_dict().items():
            lines.append(f"[{protocol}]")
            for name, m in metrics.items():
                lines.append(f"  {name:<22} {m['value']:8.4f}   (n={m['n']})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
