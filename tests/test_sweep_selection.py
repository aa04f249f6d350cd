"""The hyper-parameter sweep's selection rule (benchmarks/sweep_rome_memit.py): the best row
is the best-scoring one among the rows that reach the quality floors, so S alone cannot pick a
setting that trades neighborhood away; with no row reaching them, the best score wins."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _sweep():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_sweep_rome_memit",
                                                      BENCHMARKS / "sweep_rome_memit.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _res(eff: float, nbhd: float, score: float, rel: float = 0.0) -> dict:
    return {"efficacy": eff, "paraphrase": 0.9, "neighborhood": nbhd, "score": score,
            "relation_specificity": rel}


def test_best_row_is_the_best_score_among_rows_reaching_the_floors(capsys):
    sweep = _sweep()
    rows = [({"lam": 0.5}, _res(0.98, 0.86, 0.928)),
            ({"lam": 0.7}, _res(0.94, 0.89, 0.909)),
            ({"lam": 1.0}, _res(0.86, 0.93, 0.857))]
    assert sweep._table("t", rows, {"efficacy": 0.9, "neighborhood": 0.88}) == {"lam": 0.7}
    assert "rows reaching efficacy >= 0.9, neighborhood >= 0.88: 1 of 3" in capsys.readouterr().out


def test_without_a_row_reaching_the_floors_the_best_score_wins_then_relation_specificity(capsys):
    sweep = _sweep()
    rows = [({"layer": 0}, _res(0.8, 0.8, 0.9, rel=0.1)),
            ({"layer": 1}, _res(0.8, 0.8, 0.9, rel=0.3)),
            ({"layer": 2}, _res(0.8, 0.8, 0.7, rel=0.9))]
    assert sweep._table("t", rows, {"efficacy": 0.95}) == {"layer": 1}
    assert "(best score overall)" in capsys.readouterr().out
