"""The resumable benchmark runner: results kept per run, skipped when finished, --force, crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from editmethods import Editor
from editmethods.evaluation.bench_config import structure_bench_config
from editmethods.evaluation.bench_store import ResultStore, atomic_write_text
from editmethods.evaluation.bench_suite import run_suite
from editmethods.hookspecs import hookimpl
from editmethods.testing import AddMethod, make_plugins, tiny_model, tiny_tokenizer


def record(i: int, subject: str, new: str, true: str) -> dict:
    return {"case_id": i, "prompt": f"The capital of {subject} is", "subject": subject,
            "target_new": new, "ground_truth": true,
            "rephrase_prompt": f"{subject}'s capital is",
            "locality_prompt": "The capital of Spain is", "locality_ground_truth": "Madrid"}


class Interrupting(AddMethod):
    """``add`` that can be told to raise KeyboardInterrupt (a stopped benchmark)."""

    interrupt = False

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        if self.interrupt:
            raise KeyboardInterrupt
        return super().compute_update(method, model, hparams, location, architecture)


@pytest.fixture
def bench(tmp_path):
    data = [record(0, "France", "Rome", "Paris"), record(1, "Italy", "Paris", "Rome"),
            record(2, "Peru", "Lima", "Quito")]
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "a.yaml").write_text("value: 0.01\n")
    (tmp_path / "b.yaml").write_text("value: 0.02\n")
    doc = {"model": "tiny", "datasets": {"cf": {"data": "data.json", "n": 3},
                                          "small": {"data": "data.json", "n": 1, "offset": 2}},
           "metrics": ["efficacy", "reliability", "gen_efficacy", "gen_locality", "locality"],
           "methods": [{"label": "A", "method": "add", "hparams": "a.yaml"},
                       {"label": "B", "method": "add", "hparams": "b.yaml", "mode": "batch",
                        "datasets": ["cf"]},
                       {"label": "Gone", "method": "nosuch"}]}
    config = structure_bench_config(doc, where="bench.yaml", base_dir=tmp_path,
                                    source=str(tmp_path / "bench.yaml"))
    method = Interrupting()
    plugins = make_plugins(method)
    loads = []

    def load():
        loads.append(1)
        return Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)

    def run(chart=False, **kw):
        lines: list[str] = []
        suite = run_suite(config, tmp_path / "out", progress=False, echo=lines.append,
                          load_editor=load, plugins=plugins, chart=chart, **kw)
        return suite, "\n".join(lines)

    return {"run": run, "loads": loads, "method": method, "out": tmp_path / "out",
            "root": tmp_path, "config": config}


def labels(suite, dataset):
    (d,) = [d for d in suite.datasets if d.name == dataset]
    return [r.label for r in d.result.runs], d.result


def test_runs_are_kept_and_a_second_call_only_renders(bench):
    suite, log = bench["run"](chart=True)
    out = bench["out"]
    assert sorted(p.relative_to(out).as_posix() for p in (out / "runs").rglob("*.json")) == [
        "runs/cf/_unedited.json", "runs/cf/a.json", "runs/cf/b.json",
        "runs/small/_unedited.json", "runs/small/a.json"]
    done, cf = labels(suite, "cf")
    assert done == ["A", "B"] and "not installed" in cf.skipped["Gone"]
    assert [r.mode for r in cf.runs] == ["single", "batch"]
    assert "[1/5] A on cf: done in" in log and "s per case" in log
    record = json.loads((out / "runs" / "cf" / "a.json").read_text())
    assert record["key"]["n"] == 3 and record["key"]["data_sha256"] and record["wall_seconds"] > 0
    assert len(record["result"]["metrics"]["counterfact"]["efficacy"]["per_case"]) == 3
    table = (out / "bench.md").read_text()
    assert "**cf**" in table and "**small**" in table and "| B | 3 batch |" in table
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    doc = json.loads((out / "bench.json").read_text())
    assert doc["datasets"]["small"]["offset"] == 2
    ci = doc["datasets"]["cf"]["runs"][0]["metrics"]["wild"]["gen_efficacy"]["ci"]
    assert ci["method"] == "wilson"

    bench["loads"].clear()
    again, log = bench["run"]()
    assert bench["loads"] == []  # nothing to compute: the model is not even loaded
    assert "A on cf: finished earlier" in log and "done in" not in log
    assert again.to_dict() == suite.to_dict()
    assert (out / "bench.md").read_text() == table


def test_force_and_changed_inputs_rerun(bench):
    bench["run"]()
    bench["loads"].clear()
    _, log = bench["run"](force=True, only=["B"])
    assert "B on cf: 3 cases, mode batch" in log and "A on cf: finished earlier" in log
    assert "unedited model on" not in log  # --only B forces B alone
    # another hparams file content: that run is stale, the others are kept
    (bench["root"] / "a.yaml").write_text("value: 0.03\n")
    _, log = bench["run"]()
    assert log.count("done in") == 2 and "A on cf: 3 cases" in log and "A on small: 1 cases" in log
    assert "B on cf: finished earlier" in log
    _, log = bench["run"](force=True)
    assert log.count("done in") == 3 and log.count("unedited model on") == 2


def test_a_stopped_run_keeps_the_finished_results(bench, monkeypatch):
    bench["run"](only=["A"])
    a_file = bench["out"] / "runs" / "cf" / "a.json"
    kept = a_file.read_text()
    bench["method"].interrupt = True
    with pytest.raises(KeyboardInterrupt):
        bench["run"]()
    assert a_file.read_text() == kept
    assert not (bench["out"] / "runs" / "cf" / "b.json").exists()
    assert not list(bench["out"].rglob("*.tmp"))
    bench["method"].interrupt = False
    suite, log = bench["run"]()
    assert "A on cf: finished earlier" in log and "B on cf: 3 cases" in log
    assert labels(suite, "cf")[0] == ["A", "B"]


class InterruptAt(Interrupting):
    """Raises KeyboardInterrupt at the ``at``-th edit (a session that ends mid-run)."""

    at: int | None = None
    calls_seen = 0

    @hookimpl
    def compute_update(self, method, model, hparams, location, architecture):
        self.calls_seen += 1
        if self.at is not None and self.calls_seen == self.at:
            raise KeyboardInterrupt
        return AddMethod.compute_update(self, method, model, hparams, location, architecture)


def test_a_run_stopped_half_way_resumes_from_its_next_case(bench, tmp_path):
    uninterrupted, _ = bench["run"](only=["A"])
    expected = [r.to_dict() for d in uninterrupted.datasets for r in d.result.runs]

    config, out = bench["config"], tmp_path / "resumed"
    method = InterruptAt()
    method.at = 3  # cases 0 and 1 of 'cf' finish, case 2 is interrupted
    plugins = make_plugins(method)
    load = lambda: Editor(tiny_model("gpt2"), tiny_tokenizer(), plugins=plugins)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        run_suite(config, out, progress=False, echo=lambda line: None, load_editor=load,
                  plugins=plugins, chart=False, only=["A"])
    partial = out / "runs" / "cf" / "a.cases.jsonl"
    assert len(partial.read_text().splitlines()) == 1 + 2  # the key, then two cases
    assert not (out / "runs" / "cf" / "a.json").exists()

    method.at, method.calls_seen = None, 0
    lines: list[str] = []
    resumed = run_suite(config, out, progress=False, echo=lines.append, load_editor=load,
                        plugins=plugins, chart=False, only=["A"])
    assert "A on cf: 3 cases, mode single, resuming after 2 finished earlier" in "\n".join(lines)
    assert method.calls_seen == 1 + 1  # only case 2 of 'cf' and the one case of 'small' ran
    assert not partial.exists()
    record = json.loads((out / "runs" / "cf" / "a.json").read_text())
    assert record["resumed_cases"] == 2
    got = [r.to_dict() for d in resumed.datasets for r in d.result.runs]
    assert len(got) == len(expected) == 2
    for a, b in zip(got, expected):  # the same numbers as the uninterrupted run (but time)
        quality = lambda r: {p: m for p, m in r["metrics"].items() if p != "cost"}  # noqa: E731
        assert quality(a) == quality(b) and quality(a)
        assert a["metrics"]["cost"].keys() == b["metrics"]["cost"].keys()


def test_a_crashing_run_is_reported_and_the_next_one_runs(bench, monkeypatch):
    import editmethods.evaluation.bench_suite as suite_module

    real = suite_module.evaluate_method

    def flaky(editor, method, hparams, requests, *, label, **kw):
        if label == "A":
            raise RuntimeError("metric bug")
        return real(editor, method, hparams, requests, label=label, **kw)

    monkeypatch.setattr(suite_module, "evaluate_method", flaky)
    suite, log = bench["run"]()
    done, cf = labels(suite, "cf")
    assert done == ["B"] and cf.skipped["A"] == "crashed: RuntimeError: metric bug"
    assert "Traceback" in log and not (bench["out"] / "runs" / "cf" / "a.json").exists()
    assert "A: skipped: crashed: RuntimeError: metric bug" in (bench["out"] / "bench.md").read_text()


def test_atomic_writes_leave_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    atomic_write_text(path, "old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_record_of_another_key_or_a_damaged_file_is_not_finished(tmp_path):
    store = ResultStore(tmp_path)
    path = store.run_path("cf", "r-ROME")
    assert path == tmp_path / "runs" / "cf" / "r-rome.json"
    store.write(path, {"n": 3}, result={})
    assert store.read(path, {"n": 3}) is not None
    assert store.read(path, {"n": 4}) is None
    Path(path).write_text('{"schema": 1, "key_sha')  # cut short
    assert store.read(path, {"n": 3}) is None
