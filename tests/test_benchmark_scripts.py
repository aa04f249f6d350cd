"""The ROME/MEMIT benchmark scripts run end to end on the reference model (small sizes), so a
change in the API they use breaks CI rather than the next person who runs them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    # the scripts import each other as top-level modules, as when run from the folder
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module", autouse=True)
def reference():
    testing = pytest.importorskip("editmethods_testbed.testing",
                                  reason="editmethods-testbed is not installed")
    testing.require_reference("gpt2", splits=("test", "train"))


def test_rome_memit_eval_reports_batch_overlap_and_key_span(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert _script("rome_memit_eval").main(
        ["--rome", "2", "--memit", "12", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rome"]["n"] == 2 and 0.0 <= result["rome"]["efficacy"] <= 1.0
    (row,) = result["memit"]
    assert row["batch"] == 12
    # layers 0 and 1 of the shipped hparams, each with its whitened key-span share
    for layer in (0, 1):
        assert 0.0 < row[f"others_in_batch_span_l{layer}"] <= 1.0
    # 12 people born in 12 cities: some neighbour prompts of the batch are its own edits
    assert row["neighborhood_excluded_prompts"] > 0
    assert 0.0 <= row["neighborhood_with_rewritten"] <= 1.0
    assert "MEMIT batch | efficacy" in capsys.readouterr().out


def test_rome_memit_speed_prints_its_table(capsys):
    speed = _script("rome_memit_speed")
    assert speed.main(["--rome-edits", "1", "--memit-sizes", "2", "--z-compare", "0"]) in (0, None)
    printed = capsys.readouterr().out
    assert "ROME" in printed and "MEMIT" in printed
    assert "Statistics" in printed and "Causal tracing" in printed and "floor/full" in printed


def test_trace_sites_prints_the_share_recovered_at_each_site(tmp_path, capsys):
    out = tmp_path / "sites.json"
    assert _script("trace_sites").main(["-n", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 2
    # restoring the last position at the last layer gives the clean run back (share 1; the best
    # layer can overshoot it)
    assert all(r["last_token"] >= 0.99 for r in rows)
    assert all(r["subject_last"] <= r["any_subject_token"] + 1e-9 for r in rows)
    assert "subject_last" in capsys.readouterr().out


def test_guard_prints_cost_single_and_sequential_tables(capsys):
    guard = _script("guard")
    assert guard.main(["--repeats", "1", "--rome-edits", "1", "--no-smollm2", "--single", "1",
                       "--methods", "ft", "--sequential", "3", "--rome-sequential", "0"]) == 0
    printed = capsys.readouterr().out
    assert "Cost of Guard.probe" in printed and "probe/edit" in printed
    assert "Single edits on testbed-gpt2" in printed and "\nft " in printed
    assert printed.count("Sequential mend edits") == 2  # file order, then interleaved
    assert "with the guard acting, against the probe of the unedited model" in printed
