"""95% intervals for benchmark numbers: Wilson score intervals for rates, bootstrap percentile
intervals for means and medians.

- A **rate** whose cases each score 0 or 1 (CounterFact efficacy, WILD ``gen_efficacy``,
  reliability of one-token targets, ...) gets the Wilson score interval of
  ``successes / n`` over its ``n`` cases.
- A rate whose cases score fractions (a case's mean over its paraphrase or neighbour prompts,
  teacher-forced token accuracy of several tokens) is not a binomial count: it gets the
  bootstrap percentile interval of the mean over cases, the cases being resampled.
- Other numbers (fluency in bits, magnitudes, seconds and MiB per edit) get the bootstrap
  percentile interval of their statistic (``details["statistic"]``: ``"mean"`` by default,
  ``"median"`` for the cost metrics).

Numbers without per-case values (harmonic-mean scores, a batch edit's one timing) or with
fewer than two cases get no interval. The bootstrap is seeded, so tables are reproducible.

>>> w = wilson(8, 10)
>>> round(w.low, 4), round(w.high, 4)
(0.4902, 0.9433)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from editmethods.types import MetricResult

#: Protocols whose metrics are rates in [0, 1] (their ``*_magnitude`` metrics are not).
RATE_PROTOCOLS = frozenset({"counterfact", "teacher-forced", "exact-match", "wild"})
LEVEL = 0.95
RESAMPLES = 2000

Statistic = Literal["mean", "median"]


@attrs.frozen
class Interval:
    """A two-sided interval at confidence ``level``, computed by ``method``."""

    low: float
    high: float
    method: Literal["wilson", "bootstrap"]
    level: float = LEVEL

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "method": self.method, "level": self.level}


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(successes: float, n: int, *, level: float = LEVEL) -> Interval:
    """Wilson score interval of the proportion ``successes / n``.

    >>> [round(x, 4) for x in attrs.astuple(wilson(0, 10))[:2]]
    [0.0, 0.2775]
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    z = _z(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high, "wilson", level)


def bootstrap(values: Sequence[float], *, statistic: Statistic = "mean", level: float = LEVEL,
              resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """Bootstrap percentile interval of the mean (or median) of ``values``.

    ``resamples`` samples of ``len(values)`` values are drawn with replacement (seeded); the
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of their statistic.
    """
    import numpy as np

    if len(values) == 0:
        raise ValueError("no values to bootstrap")
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    _z(level)  # checks the level
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, len(data), size=(resamples, len(data)))]
    stats = samples.mean(axis=1) if statistic == "mean" else np.median(samples, axis=1)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), "bootstrap", level)


def is_rate(protocol: str, name: str) -> bool:
    """Whether a metric is a rate in [0, 1] (shown in % in the tables)."""
    return protocol in RATE_PROTOCOLS and not name.endswith("_magnitude")


def metric_interval(result: MetricResult, *, level: float = LEVEL) -> Interval | None:
    """The interval a table shows for ``result`` (see the module docs), or ``None``."""
    values = [v for v in result.per_case if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(values) < 2:
        return None
    statistic = result.details.get("statistic", "mean")
    if statistic not in ("mean", "median"):
        return None
    if (statistic == "mean" and is_rate(result.protocol, result.name)
            and all(v in (0.0, 1.0) for v in values)):
        return wilson(sum(values), len(values), level=level)
    return bootstrap(values, statistic=statistic, level=level)


__all__ = ["Interval", "LEVEL", "RATE_PROTOCOLS", "bootstrap", "is_rate", "metric_interval",
           "wilson"]
