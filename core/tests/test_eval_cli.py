"""``editmethods eval``, ``bench``, ``demo`` and ``models`` end to end on a tiny saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from editmethods.cli import build_cli
from editmethods.plugins import ENV_VAR, reset_plugins
from editmethods.testing import tiny_model, tiny_tokenizer

FT_M = "layers: [1]\nobjective: target_new\nnum_steps: 15\nlr: 0.05\n"


def record(case_id, template, subject, new, true, paraphrase, neighbour, other):
    return {
        "case_id": case_id,
        "requested_rewrite": {"prompt": template, "relation_id": "P1", "subject": subject,
                              "target_new": {"str": new}, "target_true": {"str": true}},
        "paraphrase_prompts": [paraphrase],
        "neighborhood_prompts": [neighbour],
        "attribute_prompts": [],
        "generation_prompts": [f"{subject} is"],
        "relation_specificity": [{"prompt": other[0], "ground_truth": other[1]}],
        "portability": [],
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    tiny_model("gpt2").save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    data = [
        record(0, "The capital of {} is", "France", "Rome", "Paris", "France's capital is",
               "The capital of Spain is", ("France speaks", "French")),
        record(1, "{} plays the", "Miles Davis", "piano", "trumpet", "Miles Davis plays",
               "Toko Yasuda plays the", ("Miles Davis was born in", "Paris")),
        record(2, "The Eiffel Tower is in", "Eiffel Tower", "Rome", "Paris", "The Eiffel Tower is in",
               "The Colosseum is in", ("The Eiffel Tower is a", "tower")),
    ]
    data[2]["requested_rewrite"]["prompt"] = "The {} is in"
    (root / "data.json").write_text(json.dumps(data))
    (root / "ft-m.yaml").write_text(FT_M)
    return root


@pytest.fixture(autouse=True)
def only_ft(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ft")
    reset_plugins()
    yield
    reset_plugins()


def invoke(*args: str):
    result = CliRunner().invoke(build_cli(), [str(a) for a in args], catch_exceptions=False)
    return result


def test_eval_single_prints_protocols_and_writes_json(workspace, tmp_path):
    out = tmp_path / "report.json"
    r = invoke("eval", "--model", workspace / "model", "--method", "ft", "--hparams",
               workspace / "ft-m.yaml", "--data", workspace / "data.json", "-n", "2",
               "--no-progress", "--out", out)
    assert r.exit_code == 0, r.output
    assert "[counterfact]" in r.output and "[teacher-forced]" in r.output and "[cost]" in r.output
    assert "restored bit for bit after the run: yes" in r.output
    doc = json.loads(out.read_text())
    assert doc["run"]["n"] == 2 and doc["run"]["restored"] is True
    assert doc["run"]["metrics"]["teacher-forced"]["reliability"]["value"] == 1.0
    assert doc["run"]["hparams"]["lr"] == 0.05


def test_eval_sequential_and_bad_input(workspace):
    r = invoke("eval", "--model", workspace / "model", "--method", "ft", "--hparams",
               workspace / "ft-m.yaml", "--data", workspace / "data.json", "--mode", "sequential",
               "--metrics", "reliability,efficacy", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "reliability" in r.output and "paraphrase " not in r.output
    bad = invoke("eval", "--model", workspace / "model", "--method", "nosuch", "--data",
                 workspace / "data.json", "--no-progress")
    assert bad.exit_code != 0 and "unknown method 'nosuch'" in bad.output
    batch = invoke("eval", "--model", workspace / "model", "--method", "ft", "--data",
                   workspace / "data.json", "--mode", "batch", "--no-progress")
    assert batch.exit_code == 0 and "mode batch" in batch.output  # ft edits batches


def test_bench_writes_table_json_and_chart_and_skips_missing_methods(workspace, tmp_path):
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"model: {workspace / 'model'}\nmode: single\n"
        f"datasets:\n  tiny: {{data: {workspace / 'data.json'}, n: 3}}\n"
        "methods:\n"
        f"  - {{label: FT-M, method: ft, hparams: {workspace / 'ft-m.yaml'}}}\n"
        "  - {label: ROME, method: rome, hparams: reference}\n"
        "  - {label: FT-ref, method: ft, hparams: reference}\n")
    out = tmp_path / "out"
    r = invoke("bench", "--config", config, "--out-dir", out, "--no-progress")
    assert r.exit_code == 0, r.output
    md = (out / "bench.md").read_text()
    assert "| FT-M |" in md and "| unedited model |" in md and "Efficacy (CF)" in md
    assert "ROME: skipped: method 'rome' is not installed" in md
    assert "FT-ref: skipped" in md  # no reference hparams file for this model
    doc = json.loads((out / "bench.json").read_text())["datasets"]["tiny"]
    assert [run["label"] for run in doc["runs"]] == ["FT-M"] and doc["n"] == 3
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_from_options(workspace, tmp_path):
    r = invoke("bench", "--model", workspace / "model", "--data", workspace / "data.json", "-n", "1",
               "--method", f"A=ft:{workspace / 'ft-m.yaml'}", "--out-dir", tmp_path,
               "--metrics", "efficacy,reliability", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "| A |" in r.output


def test_demo_edits_and_restores_exactly(workspace):
    r = invoke("demo", "--model", workspace / "model", "--data", workspace / "data.json",
               "--case", "0", "--method", "ft", "--hparams", workspace / "ft-m.yaml")
    assert r.exit_code == 0, r.output
    assert "editing with ft" in r.output and "[held-out paraphrase]" in r.output
    assert "weights bit-identical to before the edit: yes" in r.output
    after = r.output.split("after the edit")[1].split("after rollback")[0]
    assert "✓ [edited prompt] The capital of France is → Rome" in after


def test_models_lists_aliases(monkeypatch):
    from editmethods import ModelAlias, hookimpl
    from editmethods.testing import make_plugins

    class Alias:
        @hookimpl
        def register_models(self, register):
            register(ModelAlias(name="tiny-x", path="/nonexistent/x", description="a test alias"))

    from editmethods import plugins as plugins_module

    monkeypatch.setattr(plugins_module, "_default", make_plugins(Alias()))
    r = CliRunner().invoke(build_cli(), ["models"])
    assert r.exit_code == 0 and "tiny-x" in r.output and "missing" in r.output
    r = CliRunner().invoke(build_cli(), ["models", "--json"])
    assert json.loads(r.output)[0]["name"] == "tiny-x"
