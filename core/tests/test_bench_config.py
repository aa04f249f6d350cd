"""Benchmark files: the schema, strict loading with every problem named, per-run settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from editmethods.evaluation.bench_config import load_bench_config
from editmethods.errors import HyperParamsError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def write(tmp_path: Path, text: str, name: str = "bench.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


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


def test_every_problem_is_reported_with_its_key_and_the_file(tmp_path):
    path = write(tmp_path, """
model: m
n: 100
datasets:
  cf: {data: a.json, nn: 3}
methods:
  - {method: ft, hparamz: reference}
  - {method: ft, datasets: cf}
""", name="broken.yaml")
    with pytest.raises(HyperParamsError) as info:
        load_bench_config(path)
    text = str(info.value)
    assert "4 problems in broken.yaml" in text
    assert "extra fields found (n) @ broken.yaml\n" in text + "\n"
    assert "extra fields found (nn) @ broken.yaml.datasets['cf']" in text
    assert "extra fields found (hparamz) @ broken.yaml.methods[0]" in text
    assert "expected a list of names, got str: 'cf' @ broken.yaml.methods[1].datasets" in text


def test_bad_values_are_reported_with_their_paths(tmp_path):
    path = write(tmp_path, """
model: m
mode: batched
datasets:
  cf: {data: a.json, n: 0, offset: -1}
methods:
  - {method: ft, n: 2.5}
""", name="values.yaml")
    with pytest.raises(HyperParamsError, match=r"expected an integer, got float: 2\.5 @ values\.yaml\.methods\[0\]\.n"):
        load_bench_config(path)
    path.write_text(path.read_text().replace("n: 2.5", "datasets: [zsre]") + "  - {method: ft}\n")
    with pytest.raises(HyperParamsError) as info:
        load_bench_config(path)
    text = str(info.value)
    assert "'mode' must be one of single, batch, sequential: 'batched' @ values.yaml.mode" in text
    assert "'n' must be >= 1: 0 @ values.yaml.datasets['cf'].n" in text
    assert "'offset' must be >= 0: -1 @ values.yaml.datasets['cf'].offset" in text
    assert "unknown dataset 'zsre' (have: cf) @ values.yaml.methods[0].datasets" in text
    assert "label 'ft' is used twice" in text and "@ values.yaml.methods[1].label" in text


@pytest.mark.parametrize("text, message", [
    ("- a list\n", "expected a mapping of keys to values at the top level, got a list"),
    ("model: m\n", "required field missing @ top.yaml.datasets"),
    ("model: m\ndatasets: {}\nmethods: []\n", "'datasets' must name at least one dataset"),
    ("model: [1]\ndatasets: {a: {data: x}}\nmethods: [{method: ft}]\n",
     "expected a string, got list: [1] @ top.yaml.model"),
    ("model: m\ndatasets: {a: {data: x}}\nmethods: [{method: ft, hparams: 3}]\n",
     "'hparams' must be a file, 'reference', 'reference:<variant>' or a mapping: 3 @ top.yaml.methods[0].hparams"),
    ("model: m\ndatasets: {a: {data: x}}\nmethods: [{label: A B, method: ft}, {label: a-b, method: ft}]\n",
     "labels 'A B' and 'a-b' would share the result file a-b.json"),
])
def test_malformed_files(tmp_path, text, message):
    with pytest.raises(HyperParamsError) as info:
        load_bench_config(write(tmp_path, text, name="top.yaml"))
    assert message in str(info.value)


def test_command_line_overrides(tmp_path):
    config = load_bench_config(BENCHMARKS / "smollm2.yaml")
    quick = config.with_overrides(n=3, datasets=["zsre"])
    assert {(p.dataset, p.spec.n) for p in quick.plan()} == {("zsre", 3)}
    batch = config.with_overrides(mode="batch")
    assert {p.mode for p in batch.plan()} == {"batch"}
    with pytest.raises(HyperParamsError, match="unknown dataset 'nope'"):
        config.with_overrides(datasets=["nope"])
