"""Benchmark files: which methods run on which datasets of one model, loaded strictly.

A benchmark file (YAML)::

    model: smollm2-135m
    mode: single                         # default mode of every run (single/batch/sequential)
    metrics: [efficacy, gen_efficacy]    # optional; default: every metric whose inputs exist
    datasets:                            # name -> where the cases come from
      counterfact: {data: ../../shared/data/counterfact-val.json, offset: 1000, n: 200}
      zsre: {data: ../../shared/data/zsre-train-1k.json, n: 100, format: zsre-mend}
    methods:
      - {label: FT-M, method: ft, hparams: reference}
      - {label: FT-L, method: ft, hparams: "reference:ft-l"}
      - {label: ROME, method: rome, hparams: reference, n: 100, overrides: {variant: original}}
      - {label: MEMIT, method: memit, hparams: reference, mode: batch, n: 100}
      - {label: IKE, method: ike, hparams: ike.yaml, datasets: [counterfact]}

Dataset keys: ``data`` (a path relative to this file, or ``pkg:PACKAGE/path``), ``n`` (cases;
default all), ``offset`` (records skipped first), ``format`` (default: detected), ``mode``
(this dataset's default mode). Method keys: ``method``, ``label`` (the table row and the
result file's name; default the method), ``hparams`` (a file relative to this file, a mapping,
``reference`` = the file the method's package ships for the model alias, ``reference:<variant>``
= its file of that variant, or left out for the method's defaults), ``overrides`` (values that
replace the hparams' own), ``n`` and ``mode`` (replace the dataset's for this method),
``datasets`` (names; default all).

Unknown keys, wrong types and bad values are all reported at once, each with its path::

    extra fields found (nn) @ smollm2.yaml.datasets['zsre']
    'mode' must be one of single, batch, sequential: 'batched' @ smollm2.yaml.methods[5].mode
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from editmethods.evaluation.bench_store import slug
from editmethods.evaluation.benchmarking import MODES, MethodRun, is_reference
from editmethods.errors import HyperParamsError


@attrs.frozen
class DatasetSpec:
    """Where a dataset's cases come from."""

    data: str
    n: int | None = None
    offset: int = 0
    format: str | None = None
    mode: str | None = None


@attrs.frozen
class MethodEntry:
    """One method of a benchmark file, run on each of its datasets."""

    method: str
    label: str | None = None
    hparams: Any = None
    overrides: dict[str, Any] = attrs.field(factory=dict)
    n: int | None = None
    mode: str | None = None
    datasets: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return self.label or self.method


@attrs.frozen
class PlannedRun:
    """One (method, dataset) run: what the runner executes and caches."""

    dataset: str
    spec: DatasetSpec
    run: MethodRun
    mode: str


@attrs.frozen
class BenchConfig:
    """A loaded benchmark file."""

    model: str
    datasets: dict[str, DatasetSpec]
    methods: tuple[MethodEntry, ...]
    mode: str = "single"
    metrics: tuple[str, ...] | None = None
    #: The file it was read from (not a key of the file).
    source: str = ""

    def dataset_mode(self, name: str) -> str:
        return self.datasets[name].mode or self.mode

    def data_path(self, spec: DatasetSpec) -> str:
        """``spec.data`` resolved against the file's folder (``pkg:`` and absolute paths as
        they are); the tables show ``spec.data`` as written."""
        return _resolve(spec.data, Path(self.source).parent) if self.source else spec.data

    def plan(self) -> list[PlannedRun]:
        """Every (method, dataset) run, datasets in file order, methods in file order."""
        out = []
        for name, spec in self.datasets.items():
            for m in self.methods:
                if m.datasets is not None and name not in m.datasets:
                    continue
                run = MethodRun(label=m.name, method=m.method, hparams=m.hparams,
                                overrides=dict(m.overrides))
                eff = attrs.evolve(spec, n=m.n if m.n is not None else spec.n)
                out.append(PlannedRun(name, eff, run, m.mode or self.dataset_mode(name)))
        return out

    def with_overrides(self, *, n: int | None = None, mode: str | None = None,
                       offset: int | None = None, datasets: Sequence[str] = (),
                       methods: Sequence[MethodRun] = ()) -> BenchConfig:
        """A copy for a command line that overrides the file: ``n``, ``mode``, ``offset``
        for every dataset and method; ``datasets``: keep only these; ``methods``: replace the
        file's methods."""
        problems = [f"unknown dataset {d!r} (have: {', '.join(self.datasets)})"
                    for d in datasets if d not in self.datasets]
        if mode is not None and mode not in MODES:
            problems.append(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        if problems:
            raise HyperParamsError("; ".join(problems))
        chosen = {k: v for k, v in self.datasets.items() if not datasets or k in datasets}
        chosen = {k: attrs.evolve(v, n=n if n is not None else v.n,
                                  offset=offset if offset is not None else v.offset,
                                  mode=mode or v.mode)
                  for k, v in chosen.items()}
        entries = self.methods
        if methods:
            entries = tuple(MethodEntry(method=r.method, label=r.label, hparams=r.hparams,
                                        overrides=dict(r.overrides)) for r in methods)
        entries = tuple(attrs.evolve(m, n=n if n is not None else m.n, mode=mode or m.mode)
                        for m in entries)
        return attrs.evolve(self, datasets=chosen, methods=entries, mode=mode or self.mode)


# -- strict loading ---------------------------------------------------------------------------
class _Problem(ValueError):
    """A structuring error whose message is shown as it is."""


def _strict(kind: type, what: str):
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _Problem(f"expected {what}, got {type(value).__name__}: {value!r}")
        return value

    return structure


def _names(value: Any, _: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _Problem(f"expected a list of names, got {type(value).__name__}: {value!r}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise _Problem(f"expected a list of names, got {bad[0]!r} in it")
    return tuple(value)


def _mapping(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Problem(f"expected a mapping, got {type(value).__name__}: {value!r}")
    return {str(k): v for k, v in value.items()}


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _names)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _mapping)
    conv.register_structure_hook(BenchConfig, make_dict_structure_fn(
        BenchConfig, conv, source=override(omit=True), _cattrs_forbid_extra_keys=True))
    return conv


converter = _make_converter()


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, _Problem):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _value_problems(doc: BenchConfig, where: str) -> list[str]:
    problems = []

    def check_mode(mode: str | None, path: str) -> None:
        if mode is not None and mode not in MODES:
            problems.append(f"'mode' must be one of {', '.join(MODES)}: {mode!r} @ {path}.mode")

    def check_count(value: int | None, key: str, least: int, path: str) -> None:
        if value is not None and value < least:
            problems.append(f"'{key}' must be >= {least}: {value} @ {path}.{key}")

    check_mode(doc.mode, where)
    if not doc.datasets:
        problems.append(f"'datasets' must name at least one dataset @ {where}.datasets")
    if not doc.methods:
        problems.append(f"'methods' must list at least one method @ {where}.methods")
    for name, spec in doc.datasets.items():
        path = f"{where}.datasets[{name!r}]"
        check_mode(spec.mode, path)
        check_count(spec.n, "n", 1, path)
        check_count(spec.offset, "offset", 0, path)
    seen: dict[str, int] = {}
    files: dict[str, str] = {}
    for i, m in enumerate(doc.methods):
        path = f"{where}.methods[{i}]"
        check_mode(m.mode, path)
        check_count(m.n, "n", 1, path)
        if not (m.hparams is None or isinstance(m.hparams, (str, Mapping))):
            problems.append(f"'hparams' must be a file, 'reference', 'reference:<variant>' or a "
                            f"mapping: {m.hparams!r} @ {path}.hparams")
        for d in m.datasets or ():
            if d not in doc.datasets:
                problems.append(f"unknown dataset {d!r} (have: {', '.join(doc.datasets)}) "
                                f"@ {path}.datasets")
        if m.name in seen:
            problems.append(f"label {m.name!r} is used twice (methods[{seen[m.name]}] and "
                            f"methods[{i}]): give each run its own label @ {path}.label")
        elif files.setdefault(slug(m.name), m.name) != m.name:
            problems.append(f"labels {files[slug(m.name)]!r} and {m.name!r} would share the "
                            f"result file {slug(m.name)}.json: make them differ in letters or "
                            f"digits @ {path}.label")
        seen.setdefault(m.name, i)
    return problems


def _resolve(path: str, base: Path) -> str:
    if path.startswith("pkg:") or Path(path).is_absolute():
        return path
    return str(base / path)


def structure_bench_config(data: Any, *, where: str = "bench", base_dir: Path | None = None,
                           source: str = "") -> BenchConfig:
    """A :class:`BenchConfig` from parsed YAML; relative hparams paths are resolved against
    ``base_dir`` now, data paths against ``source``'s folder when used
    (:meth:`BenchConfig.data_path`). :raises HyperParamsError: listing every problem with its
    path."""
    if not isinstance(data, Mapping):
        raise HyperParamsError(f"1 problem in {where}:\n  expected a mapping with 'model', "
                               f"'datasets' and 'methods' @ {where}")
    problems: list[str] = []
    doc = None
    try:
        doc = converter.structure(dict(data), BenchConfig)
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path=where, format_exception=_format_exception)
    if doc is not None:
        problems = _value_problems(doc, where)
    if problems or doc is None:
        n = len(problems)
        raise HyperParamsError(f"{n} problem{'s' if n > 1 else ''} in {where}:\n  "
                               + "\n  ".join(problems))
    if base_dir is not None:
        doc = attrs.evolve(doc, methods=tuple(
            attrs.evolve(m, hparams=_resolve(m.hparams, base_dir))
            if isinstance(m.hparams, str) and not is_reference(m.hparams) else m
            for m in doc.methods))
    return attrs.evolve(doc, source=source)


def load_bench_config(path: str | Path) -> BenchConfig:
    """Read a benchmark file (see the module docs).

    :raises HyperParamsError: naming the file and, for each problem, the key.
    """
    from editmethods.hparams import read_mapping

    path = Path(path)
    data = read_mapping(path, what="benchmark file", example="model: testbed-gpt2")
    return structure_bench_config(data, where=path.name, base_dir=path.parent, source=str(path))


__all__ = ["BenchConfig", "DatasetSpec", "MethodEntry", "PlannedRun", "load_bench_config",
           "structure_bench_config"]
