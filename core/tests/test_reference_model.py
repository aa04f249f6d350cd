"""Slow: the demo and the benchmark runner on the bundled GPT-2 reference model."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from editmethods.cli import build_cli
from editmethods.plugins import ENV_VAR, reset_plugins

ROOT = Path(__file__).resolve().parents[2]


def _testbed():
    testing = pytest.importorskip(
        "editmethods_testbed.testing",
        reason="editmethods-testbed is not installed (pip install -e plugins/editmethods-testbed)")
    import editmethods_testbed

    return testing.require_reference("gpt2"), editmethods_testbed.data_path("test")


@pytest.fixture(autouse=True)
def fresh_plugins():
    reset_plugins()
    yield
    reset_plugins()


@pytest.mark.slow
def test_demo_runs_on_testbed_gpt2(monkeypatch):
    _testbed()
    monkeypatch.setenv(ENV_VAR, "ft,testbed")  # FT-M is always there; quick and deterministic
    hparams = ROOT / "plugins" / "editmethods-ft" / "src" / "editmethods_ft" / "hparams" / "testbed-gpt2.yaml"
    r = CliRunner().invoke(build_cli(), ["demo", "--model", "testbed-gpt2", "--method", "ft",
                                         "--hparams", str(hparams)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    before = r.output.split("before the edit:")[1].split("editing with")[0]
    assert "✓ [edited prompt]" in before  # the demo picks a fact the model knows
    after = r.output.split("after the edit")[1].split("after rollback")[0]
    assert "✓ [edited prompt]" in after
    assert "weights bit-identical to before the edit: yes" in r.output


@pytest.mark.slow
def test_ft_m_benchmark_row_on_testbed_gpt2(monkeypatch, tmp_path):
    _testbed()
    monkeypatch.setenv(ENV_VAR, "ft,testbed")
    r = CliRunner().invoke(build_cli(), [
        "bench", "--config", str(ROOT / "benchmarks" / "reference.yaml"), "-n", "10",
        "--out-dir", str(tmp_path), "--no-progress",
        "--metrics", "efficacy,paraphrase,neighborhood,score,reliability,locality"],
        catch_exceptions=False)
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads((tmp_path / "bench.json").read_text())["datasets"]["test"]
    (ft,) = [run for run in doc["runs"] if run["label"] == "FT-M"]
    assert ft["restored"] and not ft["failures"]
    # the unedited model knows the facts: new loses to true before the edit, wins after
    assert doc["unedited"]["counterfact"]["efficacy"]["value"] <= 0.2
    assert ft["metrics"]["counterfact"]["efficacy"]["value"] >= 0.8
