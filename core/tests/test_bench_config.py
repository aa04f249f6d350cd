"""Benchmark files: the schema, strict loading with every problem named, per-run settings."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from editmethods.errors import HyperParamsError
from editmethods.evaluation import bench_suite
from editmethods.evaluation.bench_config import (
    BenchConfig,
    DatasetSpec,
    MethodEntry,
    load_bench_config,
    structure_bench_config,
)
from editmethods.evaluation.bench_store import key_sha256

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
GOOD = "model: m\ndatasets:\n  cf: {data: a.json}\nmethods:\n  - {method: ft}\n"


def write(tmp_path: Path, text: str, name: str = "bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, name: str = "top.yaml") -> list[str]:
    """The problem lines of the error that loading ``text`` raises."""
    with pytest.raises(HyperParamsError) as info:
        load_bench_config(write(tmp_path, text, name=name))
    head, *lines = str(info.value).split("\n")
    n = len(lines)
    assert head == f"{n} problem{'s' if n > 1 else ''} in {name}:"
    return [line.strip() for line in lines]


def test_the_shipped_files_load_with_their_per_run_settings():
    ref = load_bench_config(BENCHMARKS / "reference.yaml")
    assert ref.model == "testbed-gpt2" and list(ref.datasets) == ["test"]
    plan = ref.plan()
    assert [p.run.label for p in plan] == ["FT-M", "LoRA", "ROME", "MEMIT", "IKE", "SERAC", "MEND"]
    assert {(p.spec.n, p.mode, p.run.hparams) for p in plan} == {(100, "single", "reference")}

    real = load_bench_config(BENCHMARKS / "smollm2.yaml")
    assert real.model == "smollm2-135m"
    runs = {(p.dataset, p.run.label): p for p in real.plan()}
    labels = ["FT-L", "FT-M", "LoRA", "ROME", "r-ROME", "MEMIT", "IKE", "MEND", "SERAC"]
    assert set(runs) == {(d, m) for d in ("counterfact", "zsre") for m in labels}
    cf = {m: runs["counterfact", m] for m in labels}
    assert all(cf[m].spec.n >= 200 for m in ("FT-L", "FT-M", "LoRA", "IKE", "MEND", "SERAC"))
    assert cf["ROME"].spec.n == cf["r-ROME"].spec.n == 100
    assert (cf["MEMIT"].spec.n, cf["MEMIT"].mode) == (100, "batch")
    assert {p.spec.offset for p in cf.values()} == {1000}
    assert {runs["zsre", m].spec.n for m in labels} == {100}
    assert cf["ROME"].run.overrides["variant"] == "original"
    assert cf["r-ROME"].run.overrides["variant"] == "consistent"
    assert cf["FT-L"].run.hparams == "reference:ft-l"
    # data paths are relative to the file: the shared folder next to the repository
    assert Path(real.data_path(real.datasets["zsre"])).resolve() == \
        (BENCHMARKS.parent.parent / "shared" / "data" / "zsre-train-1k.json").resolve()


@pytest.mark.parametrize("dataset, label", [("counterfact", "rome"), ("counterfact", None)])
def test_finished_runs_keep_their_keys(monkeypatch, dataset, label):
    """The key a run's result file is found by (bench_suite.run_key) is byte-identical to the
    one stored when the headline run finished: loading smollm2.yaml gives the same model,
    method, overrides, mode, metrics, data name, offset, n and format. File contents enter the
    key as sha256s; they are taken from the stored key, so a retuned hparams file or a missing
    data folder does not make this test fail."""
    stored_path = BENCHMARKS / "results" / "smollm2" / "runs" / dataset / f"{label or '_unedited'}.json"
    if not stored_path.is_file():
        pytest.skip(f"no stored result {stored_path}")
    stored = json.loads(stored_path.read_text())
    key = stored["key"]
    shas = {key["data"]: key["data_sha256"]}
    if isinstance(key.get("hparams"), dict) and "file" in key["hparams"]:
        shas[key["hparams"]["file"]] = key["hparams"]["sha256"]
    monkeypatch.setattr(bench_suite, "sha256_file", lambda path: shas[Path(path).name])
    config = load_bench_config(BENCHMARKS / "smollm2.yaml")
    if label is None:
        assert key_sha256(bench_suite.unedited_key(config, dataset)) == stored["key_sha256"]
        return
    rome = pytest.importorskip("editmethods_rome.plugin")
    from editmethods.evaluation.benchmarking import resolve_run
    from editmethods.plugins import Plugins

    plugins = Plugins(entry_points=False)
    plugins.register(rome, name="rome")
    (planned,) = [p for p in config.plan() if (p.dataset, p.run.label) == (dataset, stored["label"])]
    resolved = attrs.evolve(planned, run=resolve_run(plugins, planned.run, config.model))
    assert bench_suite.run_key(config, resolved) == key
    assert key_sha256(bench_suite.run_key(config, resolved)) == stored["key_sha256"]


def test_methods_can_pick_datasets_and_hparams_paths_are_relative_to_the_file(tmp_path):
    path = write(tmp_path, """
model: m
datasets:
  a: {data: a.json, n: 5}
  b: {data: "pkg:some_pkg/b.json", offset: 3}
methods:
  - {label: X, method: ft, hparams: x.yaml, datasets: [b], mode: sequential}
  - {method: rome, hparams: {layers: [1]}}
""")
    config = load_bench_config(path)
    plan = [(p.dataset, p.run.label, p.spec.n, p.spec.offset, p.mode) for p in config.plan()]
    assert plan == [("a", "rome", 5, 0, "single"), ("b", "X", None, 3, "sequential"),
                    ("b", "rome", None, 3, "single")]
    assert config.methods[0].hparams == str(tmp_path / "x.yaml")
    assert config.methods[1].hparams == {"layers": [1]}
    assert config.data_path(config.datasets["a"]) == str(tmp_path / "a.json")
    assert config.data_path(config.datasets["b"]) == "pkg:some_pkg/b.json"


def test_every_key_of_the_schema_loads(tmp_path):
    config = load_bench_config(write(tmp_path, """
model: m
mode: batch
metrics: [efficacy, locality]
datasets:
  cf: {data: a.json, n: 3, offset: 2, format: zsre-mend, mode: sequential}
methods:
  - {method: ft, label: F, hparams: "reference:ft-l", overrides: {lr: 0.1}, n: 2, mode: single,
     datasets: [cf]}
  - {method: rome, label: null, hparams: null, n: null, mode: null, datasets: null}
"""))
    assert config == BenchConfig(
        model="m", mode="batch", metrics=("efficacy", "locality"), source=config.source,
        datasets={"cf": DatasetSpec(data="a.json", n=3, offset=2, format="zsre-mend",
                                    mode="sequential")},
        methods=(MethodEntry(method="ft", label="F", hparams="reference:ft-l",
                             overrides={"lr": 0.1}, n=2, mode="single", datasets=("cf",)),
                 MethodEntry(method="rome")))


# One kind of bad input per case: the problem's text and where it is reported.
BAD = [
    # keys that are not in the schema, at each level
    ("extra-top", GOOD + "n: 100\n", "extra fields found (n) @ top.yaml"),
    ("extra-dataset", GOOD.replace("{data: a.json}", "{data: a.json, nn: 3}"),
     "extra fields found (nn) @ top.yaml.datasets['cf']"),
    ("extra-method", GOOD.replace("{method: ft}", "{method: ft, hparamz: reference}"),
     "extra fields found (hparamz) @ top.yaml.methods[0]"),
    ("source-is-not-a-key", GOOD + "source: x\n", "extra fields found (source) @ top.yaml"),
    # required keys
    ("no-model", GOOD.replace("model: m\n", ""), "required field missing @ top.yaml.model"),
    ("no-datasets", "model: m\nmethods: [{method: ft}]\n",
     "required field missing @ top.yaml.datasets"),
    ("no-methods", "model: m\ndatasets: {cf: {data: a.json}}\n",
     "required field missing @ top.yaml.methods"),
    ("no-data", GOOD.replace("{data: a.json}", "{n: 3}"),
     "required field missing @ top.yaml.datasets['cf'].data"),
    ("no-method", GOOD.replace("{method: ft}", "{label: X}"),
     "required field missing @ top.yaml.methods[0].method"),
    # values of the wrong kind, never coerced
    ("float-n", GOOD.replace("{method: ft}", "{method: ft, n: 2.5}"),
     "must be an integer, got the float 2.5: write a whole number, such as 2 or 3 "
     "@ top.yaml.methods[0].n"),
    ("quoted-n", GOOD.replace("{data: a.json}", "{data: a.json, n: '5'}"),
     "must be an integer, got the string '5': write 5 without quotes "
     "@ top.yaml.datasets['cf'].n"),
    ("bool-offset", GOOD.replace("{data: a.json}", "{data: a.json, offset: true}"),
     "must be an integer, got the boolean true: write a whole number: true and false are not "
     "numbers @ top.yaml.datasets['cf'].offset"),
    ("list-model", GOOD.replace("model: m", "model: [1]"),
     "must be a string, got a list [1]: write one string, not a list @ top.yaml.model"),
    ("number-data", GOOD.replace("{data: a.json}", "{data: 3}"),
     "must be a string, got the integer 3: put it in quotes: '3' @ top.yaml.datasets['cf'].data"),
    ("string-datasets-of-a-method", GOOD.replace("{method: ft}", "{method: ft, datasets: cf}"),
     "must be a list of strings, got the string 'cf': write ['cf'] without quotes (a YAML "
     "list) @ top.yaml.methods[0].datasets"),
    ("string-metrics", GOOD + "metrics: efficacy\n",
     "must be a list of strings, got the string 'efficacy': write ['efficacy'] without quotes "
     "(a YAML list) @ top.yaml.metrics"),
    ("list-datasets", GOOD.replace("datasets:\n  cf: {data: a.json}", "datasets: [cf]"),
     "must be a mapping of names to values, got list (['cf']): write 'name: value' pairs, "
     "indented under the key or in {...} @ top.yaml.datasets"),
    ("string-dataset", GOOD.replace("{data: a.json}", "a.json"),
     "must be a mapping with data (optional: n, offset, format, mode), got str ('a.json'): "
     "write {data: a.json} @ top.yaml.datasets['cf']"),
    ("string-method", GOOD.replace("{method: ft}", "ft"),
     "must be a mapping with method (optional: label, hparams, overrides, n, mode, datasets), "
     "got str ('ft'): write {method: ft} @ top.yaml.methods[0]"),
    ("mapping-methods", GOOD.replace("  - {method: ft}", "  ft: {}"),
     "must be a list of methods, got dict ({'ft': {}}): write one '- {method: ..., label: ...}' "
     "line per method @ top.yaml.methods"),
    ("list-overrides", GOOD.replace("{method: ft}", "{method: ft, overrides: [lr]}"),
     "must be a mapping of names to values, got list (['lr']): write 'name: value' pairs, "
     "indented under the key or in {...} @ top.yaml.methods[0].overrides"),
    ("number-override-key", GOOD.replace("{method: ft}", "{method: ft, overrides: {1: 2}}"),
     "must be a string, got the integer 1: put it in quotes: '1' "
     "@ top.yaml.methods[0].overrides[1]"),
    ("number-hparams", GOOD.replace("{method: ft}", "{method: ft, hparams: 3}"),
     "'hparams' must be a file, 'reference', 'reference:<variant>' or a mapping: 3 "
     "@ top.yaml.methods[0].hparams"),
    # values out of range
    ("zero-n-of-a-dataset", GOOD.replace("{data: a.json}", "{data: a.json, n: 0}"),
     "'n' must be >= 1: 0 @ top.yaml.datasets['cf'].n"),
    ("zero-n-of-a-method", GOOD.replace("{method: ft}", "{method: ft, n: 0}"),
     "'n' must be >= 1: 0 @ top.yaml.methods[0].n"),
    ("negative-offset", GOOD.replace("{data: a.json}", "{data: a.json, offset: -1}"),
     "'offset' must be >= 0: -1 @ top.yaml.datasets['cf'].offset"),
    ("mode", GOOD + "mode: batched\n",
     "'mode' must be one of single, batch, sequential: 'batched' @ top.yaml.mode"),
    ("mode-of-a-dataset", GOOD.replace("{data: a.json}", "{data: a.json, mode: all}"),
     "'mode' must be one of single, batch, sequential: 'all' @ top.yaml.datasets['cf'].mode"),
    ("mode-of-a-method", GOOD.replace("{method: ft}", "{method: ft, mode: Batch}"),
     "'mode' must be one of single, batch, sequential: 'Batch' @ top.yaml.methods[0].mode"),
    ("format", GOOD.replace("{data: a.json}", "{data: a.json, format: cf}"),
     "'format' must be one of counterfact, easyedit, zsre-mend, knowedit: 'cf' "
     "@ top.yaml.datasets['cf'].format"),
    ("empty-model", GOOD.replace("model: m", "model: ''"),
     "'model' must not be empty: write a model alias, folder or hub id @ top.yaml.model"),
    ("empty-data", GOOD.replace("{data: a.json}", "{data: ' '}"),
     "'data' must not be empty: write the path of a data file, or pkg:PACKAGE/path "
     "@ top.yaml.datasets['cf'].data"),
    ("empty-label", GOOD.replace("{method: ft}", "{method: ft, label: ''}"),
     "'label' must not be empty: write a label, or remove the key for the method's name "
     "@ top.yaml.methods[0].label"),
    ("empty-hparams", GOOD.replace("{method: ft}", "{method: ft, hparams: ''}"),
     "'hparams' must not be empty: write a file, 'reference' or 'reference:<variant>', or "
     "remove the key for the method's defaults @ top.yaml.methods[0].hparams"),
    ("reference-without-variant", GOOD.replace("{method: ft}", "{method: ft, hparams: 'reference:'}"),
     "'hparams' names no variant after 'reference:': write 'reference' or "
     "'reference:<variant>' (such as 'reference:ft-l') @ top.yaml.methods[0].hparams"),
    ("no-dataset", "model: m\ndatasets: {}\nmethods: [{method: ft}]\n",
     "'datasets' must name at least one dataset @ top.yaml.datasets"),
    ("no-method", "model: m\ndatasets: {cf: {data: a.json}}\nmethods: []\n",
     "'methods' must list at least one method @ top.yaml.methods"),
    ("no-dataset-of-a-method", GOOD.replace("{method: ft}", "{method: ft, datasets: []}"),
     "'datasets' must name at least one dataset, or be left out for all of them "
     "@ top.yaml.methods[0].datasets"),
    ("no-metric", GOOD + "metrics: []\n",
     "'metrics' must name at least one metric, or be left out for all of them @ top.yaml.metrics"),
    # rules across fields
    ("unknown-dataset", GOOD.replace("{method: ft}", "{method: ft, datasets: [zsre]}"),
     "unknown dataset 'zsre' (have: cf) @ top.yaml.methods[0].datasets"),
    ("label-twice", GOOD + "  - {method: ft}\n",
     "label 'ft' is used twice (methods[0] and methods[1]): give each run its own label "
     "@ top.yaml.methods[1].label"),
    ("labels-share-a-file", GOOD + "  - {method: rome, label: FT}\n",
     "labels 'ft' and 'FT' would share the result file ft.json: make them differ in letters or "
     "digits @ top.yaml.methods[1].label"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_each_kind_of_bad_input_is_one_problem_with_its_path(tmp_path, text, message):
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert message in found[0]


@pytest.mark.parametrize("text, message", [
    ("- a list\n", "expected a mapping of keys to values at the top level, got a list"),
    ("", "the benchmark file is empty"),
    ("model: m\nmodel: n\n", "found the key 'model' twice"),
    ("model: !!python/object/apply:os.system [ls]\n", "is not allowed"),
    ("model: [unclosed\n", "not valid YAML"),
])
def test_unreadable_files_are_refused_like_hparams_files(tmp_path, text, message):
    with pytest.raises(HyperParamsError, match="top.yaml") as info:
        load_bench_config(write(tmp_path, text, name="top.yaml"))
    assert message in str(info.value)


def test_every_problem_is_listed_at_once(tmp_path):
    found = problems(tmp_path, """
model: ''
mode: batched
n: 100
datasets:
  cf: {data: a.json, n: 0, offset: -1, format: cf, nn: 3}
  zs: a.json
methods:
  - {method: ft, n: 2.5, datasets: [zsre]}
  - {method: ft, hparams: 3}
  - rome
  - {label: A B, method: x, mode: all}
  - {label: a-b, method: x, overrides: [1]}
""", name="broken.yaml")
    assert sorted(found) == sorted([
        "extra fields found (n) @ broken.yaml",
        "'model' must not be empty: write a model alias, folder or hub id @ broken.yaml.model",
        "'mode' must be one of single, batch, sequential: 'batched' @ broken.yaml.mode",
        "extra fields found (nn) @ broken.yaml.datasets['cf']",
        "'n' must be >= 1: 0 @ broken.yaml.datasets['cf'].n",
        "'offset' must be >= 0: -1 @ broken.yaml.datasets['cf'].offset",
        "'format' must be one of counterfact, easyedit, zsre-mend, knowedit: 'cf' "
        "@ broken.yaml.datasets['cf'].format",
        "must be a mapping with data (optional: n, offset, format, mode), got str ('a.json'): "
        "write {data: a.json} @ broken.yaml.datasets['zs']",
        "must be an integer, got the float 2.5: write a whole number, such as 2 or 3 "
        "@ broken.yaml.methods[0].n",
        "unknown dataset 'zsre' (have: cf, zs) @ broken.yaml.methods[0].datasets",
        "'hparams' must be a file, 'reference', 'reference:<variant>' or a mapping: 3 "
        "@ broken.yaml.methods[1].hparams",
        "label 'ft' is used twice (methods[0] and methods[1]): give each run its own label "
        "@ broken.yaml.methods[1].label",
        "must be a mapping with method (optional: label, hparams, overrides, n, mode, "
        "datasets), got str ('rome'): write {method: rome} @ broken.yaml.methods[2]",
        "'mode' must be one of single, batch, sequential: 'all' @ broken.yaml.methods[3].mode",
        "must be a mapping of names to values, got list ([1]): write 'name: value' pairs, "
        "indented under the key or in {...} @ broken.yaml.methods[4].overrides",
        "labels 'A B' and 'a-b' would share the result file a-b.json: make them differ in "
        "letters or digits @ broken.yaml.methods[4].label",
    ])


def test_parsed_documents_are_checked_the_same_way():
    with pytest.raises(HyperParamsError, match=r"1 problem in bench:\n  must be a mapping with "
                       r"model, datasets, methods \(optional: mode, metrics\), got list"):
        structure_bench_config([1])
    config = structure_bench_config({"model": "m", "datasets": {"cf": {"data": "a.json"}},
                                     "methods": [{"method": "ft"}]})
    assert config.source == "" and config.data_path(config.datasets["cf"]) == "a.json"


def test_the_classes_check_their_values_in_python_too():
    with pytest.raises(ValueError, match="'n' must be >= 1: 0"):
        DatasetSpec(data="a.json", n=0)
    with pytest.raises(ValueError, match="'mode' must be one of single, batch, sequential"):
        MethodEntry(method="ft", mode="batched")
    with pytest.raises(ValueError, match="'hparams' must be a file"):
        MethodEntry(method="ft", hparams=3)
    # what the Editor takes as hparams is fine; a command line's config may have no methods yet
    assert MethodEntry(method="ft", hparams=Path("x.yaml")).hparams == Path("x.yaml")
    assert BenchConfig(model="", datasets={"d": DatasetSpec(data="a.json")}, methods=()).plan() == []


def test_command_line_overrides(tmp_path):
    config = load_bench_config(BENCHMARKS / "smollm2.yaml")
    quick = config.with_overrides(n=3, datasets=["zsre"])
    assert {(p.dataset, p.spec.n) for p in quick.plan()} == {("zsre", 3)}
    batch = config.with_overrides(mode="batch")
    assert {p.mode for p in batch.plan()} == {"batch"}
    later = config.with_overrides(offset=5)
    assert {p.spec.offset for p in later.plan()} == {5}
    with pytest.raises(HyperParamsError, match="unknown dataset 'nope'"):
        config.with_overrides(datasets=["nope"])
    with pytest.raises(HyperParamsError) as info:
        config.with_overrides(datasets=["nope"], mode="batched")
    assert str(info.value) == ("unknown dataset 'nope' (have: counterfact, zsre); 'mode' must be "
                               "one of single, batch, sequential: 'batched'")
    with pytest.raises(HyperParamsError, match="'n' must be >= 1: 0"):
        config.with_overrides(n=0)
