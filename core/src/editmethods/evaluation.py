"""The result of ``Editor.evaluate``: metric results grouped by protocol, never averaged across."""

from __future__ import annotations

from typing import Any, Iterator

import attrs

from editmethods.types import MetricResult


@attrs.frozen
class EvalReport:
    """Metric results of one evaluation.

    >>> r = EvalReport((MetricResult("reliability", 1.0, "teacher-forced", 1),))
    >>> r["reliability"].value
    1.0
    """

    results: tuple[MetricResult, ...] = attrs.field(converter=tuple)

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

    def to_dict(self) -> dict[str, Any]:
        """``{protocol: {metric: {"value", "n", "details"}}}``, JSON-serializable."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.results:
            out.setdefault(r.protocol, {})[r.name] = {
                "value": r.value, "n": r.n, "details": dict(r.details),
            }
        return out

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
