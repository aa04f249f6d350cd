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

The file is read like a hyper-parameter file (:func:`editmethods.hparams.read_mapping`: YAML
through ``yaml.SafeLoader``) and structured by :data:`converter`, a copy of the
hyper-parameters' strict converter: unknown keys are refused, values are checked and never
coerced, each field's attrs validator runs as the field is read, and the rules that span
fields (unique labels, known dataset names) run on the same pass. Every problem is reported
at once, each with its path::

    extra fields found (nn) @ smollm2.yaml.datasets['zsre']
    must be an integer, got the float 2.5: write a whole number, such as 2 or 3 @ smollm2.yaml.methods[3].n
    'mode' must be one of single, batch, sequential: 'batched' @ smollm2.yaml.methods[5].mode
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.cols import is_mapping, mapping_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from editmethods.errors import HyperParamsError
from editmethods.evaluation.bench_store import slug
from editmethods.evaluation.benchmarking import MODES, REFERENCE, MethodRun, is_reference
from editmethods.evaluation.loaders import FORMATS
from editmethods.hparams import HyperParams, read_mapping
from editmethods.hparams import converter as _hparams_converter
from editmethods.types import describe_value

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# -- validators: what the classes hold, checked in Python and, with its path, in files --------
def _one_of(choices: Sequence[str]) -> Validator:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in choices:
            raise ValueError(f"{attribute.name!r} must be one of {', '.join(choices)}: {value!r}")

    return check


def _filled(fix: str) -> Validator:
    """A string that, when given, is not empty (nor only spaces)."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{attribute.name!r} must not be empty: {fix}")

    return check


def _some(what: str, *, or_all: bool = True) -> Validator:
    """A collection that, when given, names at least one ``what`` (``or_all``: leaving the
    key out means all of them)."""
    fix = ", or be left out for all of them" if or_all else ""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not value:
            raise ValueError(f"{attribute.name!r} must name at least one {what}{fix}")

    return check


def _hparams_value(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Anything the Editor takes as hparams; of strings, a non-empty path, ``reference`` or
    ``reference:<variant>``."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("'hparams' must not be empty: write a file, 'reference' or "
                             "'reference:<variant>', or remove the key for the method's defaults")
        if value.startswith(REFERENCE + ":") and not value.partition(":")[2].strip():
            raise ValueError("'hparams' names no variant after 'reference:': write 'reference' "
                             "or 'reference:<variant>' (such as 'reference:ft-l')")
        return
    if value is None or isinstance(value, (Mapping, PathLike, HyperParams)):
        return
    raise ValueError(f"'hparams' must be a file, 'reference', 'reference:<variant>' or a "
                     f"mapping: {value!r}")


_COUNT = attrs.validators.optional(attrs.validators.ge(1))


@attrs.frozen
class DatasetSpec:
    """Where a dataset's cases come from."""

    #: A path (relative to the benchmark file when loaded from one) or ``pkg:PACKAGE/path``.
    data: str = attrs.field(
        validator=_filled("write the path of a data file, or pkg:PACKAGE/path"))
    #: How many cases (``None``: all).
    n: int | None = attrs.field(default=None, validator=_COUNT)
    #: Records skipped before the first case.
    offset: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: One of :data:`editmethods.evaluation.loaders.FORMATS` (``None``: detected).
    format: str | None = attrs.field(default=None, validator=_one_of(FORMATS))
    #: This dataset's default mode (``None``: the file's).
    mode: str | None = attrs.field(default=None, validator=_one_of(MODES))


@attrs.frozen
class MethodEntry:
    """One method of a benchmark file, run on each of its datasets."""

    method: str = attrs.field(validator=_filled("write the method's name, such as rome"))
    label: str | None = attrs.field(
        default=None, validator=_filled("write a label, or remove the key for the method's name"))
    #: A file, a mapping, ``reference``, ``reference:<variant>``, an hparams object or ``None``.
    hparams: Any = attrs.field(default=None, validator=_hparams_value)
    overrides: dict[str, Any] = attrs.field(factory=dict)
    n: int | None = attrs.field(default=None, validator=_COUNT)
    mode: str | None = attrs.field(default=None, validator=_one_of(MODES))
    datasets: tuple[str, ...] | None = attrs.field(default=None, validator=_some("dataset"))

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
    """A loaded benchmark file.

    ``methods`` may be empty here (a command line that gives its own); a file must list one.
    """

    model: str
    datasets: dict[str, DatasetSpec] = attrs.field(validator=_some("dataset", or_all=False))
    methods: tuple[MethodEntry, ...]
    mode: str = attrs.field(default="single", validator=_one_of(MODES))
    metrics: tuple[str, ...] | None = attrs.field(default=None, validator=_some("metric"))
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
        file's methods.

        :raises HyperParamsError: naming each unknown dataset and each refused value.
        """
        problems = [f"unknown dataset {d!r} (have: {', '.join(self.datasets)})"
                    for d in datasets if d not in self.datasets]
        chosen = {k: v for k, v in self.datasets.items() if not datasets or k in datasets}
        try:  # the classes' validators check the new values
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
            if not problems:
                return attrs.evolve(self, datasets=chosen, methods=entries,
                                    mode=mode or self.mode)
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
        raise HyperParamsError("; ".join(problems))


# -- strict loading ---------------------------------------------------------------------------
class _Problem(ValueError):
    """A value refused while structuring; its message is shown as it is."""


def _at(problem: Exception, *steps: str | int) -> Exception:
    """``problem`` inside the errors cattrs raises for ``steps`` below the file's top
    (``"methods", 2, "label"``), so that ``transform_error`` reports it at that path."""
    current = problem
    for depth in range(len(steps) - 1, -1, -1):
        step = steps[depth]
        note: Any = (IterableValidationNote(f"Structuring @ index {step!r}", step, Any)
                     if isinstance(step, int) else
                     AttributeValidationNote(f"Structuring @ attribute {step}", step, Any))
        current.__notes__ = [*getattr(current, "__notes__", []), note]  # type: ignore[attr-defined]
        if depth:
            wrap = IterableValidationError if isinstance(step, int) else ClassValidationError
            current = wrap("While structuring", [current], Any)
    return current


def _file_rules(doc: Mapping[str, Any]) -> Iterator[Exception]:
    """The rules of a file that span fields, or that a config built for a command line does
    not follow yet (a model, some methods), read from the raw mapping so that they are reported with every other problem. Values of
    the wrong type are left to the fields' own checks."""
    model, methods = doc.get("model"), doc.get("methods")
    if isinstance(model, str) and not model.strip():
        yield _at(_Problem("'model' must not be empty: write a model alias, folder or hub id"),
                  "model")
    if not isinstance(methods, (list, tuple)):
        return
    if not methods:
        yield _at(_Problem("'methods' must list at least one method"), "methods")
    datasets = doc.get("datasets")
    known = list(datasets) if isinstance(datasets, Mapping) else None
    seen: dict[str, int] = {}
    files: dict[str, str] = {}
    for i, entry in enumerate(methods):
        if not isinstance(entry, Mapping):
            continue
        wanted = entry.get("datasets")
        if known is not None and isinstance(wanted, (list, tuple)):
            for d in wanted:
                if isinstance(d, str) and d not in known:
                    yield _at(_Problem(f"unknown dataset {d!r} (have: {', '.join(known)})"),
                              "methods", i, "datasets")
        name = entry.get("label") or entry.get("method")  # MethodEntry.name
        if not isinstance(name, str) or not name.strip():
            continue
        if name in seen:
            yield _at(_Problem(f"label {name!r} is used twice (methods[{seen[name]}] and "
                               f"methods[{i}]): give each run its own label"),
                      "methods", i, "label")
        elif files.setdefault(slug(name), name) != name:
            yield _at(_Problem(f"labels {files[slug(name)]!r} and {name!r} would share the "
                               f"result file {slug(name)}.json: make them differ in letters or "
                               f"digits"), "methods", i, "label")
        seen.setdefault(name, i)


def _validated(field: attrs.Attribute[Any], conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """A field's structure hook: its type's strict hook, then its attrs validator, so that a
    bad value is reported with the field's path (the class's ``__init__`` would stop at the
    first one, with no path)."""
    check, kind = field.validator, field.type
    assert check is not None and kind is not None  # only fields with a validator, types resolved

    def structure(value: Any, _: Any) -> Any:
        out = conv.structure(value, kind)
        check(None, field, out)
        return out

    return structure


def _class_hook(cls: type, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(cls)
    fields = [f for f in attrs.fields(cls) if f.name != "source"]
    hooks: dict[str, Any] = {f.name: override(struct_hook=_validated(f, conv))
                             for f in fields if f.validator is not None}
    if cls is BenchConfig:
        hooks["source"] = override(omit=True)
    inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
        cls, conv, _cattrs_forbid_extra_keys=True, **hooks)
    required = [f.name for f in fields if f.default is attrs.NOTHING]
    optional = ", ".join(f.name for f in fields if f.name not in required)
    shape = f"a mapping with {', '.join(required)} (optional: {optional})"

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):
            # "- rome" for "- {method: rome}": show the value in its place
            shown = value if isinstance(value, str) and len(required) == 1 else "..."
            example = ", ".join(f"{k}: {shown}" for k in required)
            raise _Problem(f"must be {shape}, got {describe_value(value)}: write {{{example}}}")
        if cls is not BenchConfig:
            return inner(value, cls)
        problems, doc = [], None
        try:
            doc = inner(value, cls)
        except ClassValidationError as exc:
            problems.extend(exc.exceptions)
        problems.extend(_file_rules(value))
        if problems:
            raise ClassValidationError(f"While structuring {cls.__name__}", problems, cls)
        return doc

    return structure


def _mapping_hook(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = mapping_structure_factory(tp, conv)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):  # cattrs' own hook fails on .items()
            raise _Problem(f"must be a mapping of names to values, got {describe_value(value)}: "
                           "write 'name: value' pairs, indented under the key or in {...}")
        return inner(value, tp)

    return structure


def _make_converter() -> cattrs.Converter:
    conv = _hparams_converter.copy()  # strict scalars and lists: never coerced
    conv.register_structure_hook_factory(is_mapping, _mapping_hook)
    conv.register_structure_hook_factory(
        lambda t: t in (DatasetSpec, MethodEntry, BenchConfig), _class_hook)
    items = conv.get_structure_hook(tuple[MethodEntry, ...])  # each entry checked, with its index

    def methods(value: Any, tp: Any) -> tuple[MethodEntry, ...]:
        if not isinstance(value, (list, tuple)):  # the generic hint shows no method's shape
            raise _Problem(f"must be a list of methods, got {describe_value(value)}: write one "
                           "'- {method: ..., label: ...}' line per method")
        return items(value, tp)

    conv.register_structure_hook_func(lambda t: t == tuple[MethodEntry, ...], methods)
    return conv


#: Structures a benchmark file's mapping into a :class:`BenchConfig` (raises cattrs errors;
#: :func:`structure_bench_config` turns them into one :class:`HyperParamsError`).
converter = _make_converter()


def _format_exception(exc: BaseException, type_: Any) -> str:
    # Our refusals, the hparams converter's and the validators' are complete sentences.
    if isinstance(exc, (ValueError, TypeError)):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _resolve(path: str, base: Path) -> str:
    if path.startswith("pkg:") or Path(path).is_absolute():
        return path
    return str(base / path)


def structure_bench_config(data: Any, *, where: str = "bench", base_dir: Path | None = None,
                           source: str = "") -> BenchConfig:
    """A :class:`BenchConfig` from parsed YAML; relative hparams paths are resolved against
    ``base_dir`` now, data paths against ``source``'s folder when used
    (:meth:`BenchConfig.data_path`).

    :raises HyperParamsError: listing every problem with its path.
    """
    try:
        doc = converter.structure(data, BenchConfig)
    except BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path=where, format_exception=_format_exception)
    except _Problem as exc:  # not a mapping at all
        problems = [f"{exc} @ {where}"]
    else:
        if base_dir is not None:
            doc = attrs.evolve(doc, methods=tuple(
                attrs.evolve(m, hparams=_resolve(m.hparams, base_dir))
                if isinstance(m.hparams, str) and not is_reference(m.hparams) else m
                for m in doc.methods))
        return attrs.evolve(doc, source=source)
    n = len(problems)
    raise HyperParamsError(f"{n} problem{'s' if n > 1 else ''} in {where}:\n  "
                           + "\n  ".join(problems))


def load_bench_config(path: str | Path) -> BenchConfig:
    """Read a benchmark file (see the module docs).

    :raises HyperParamsError: naming the file and, for each problem, the key.
    """
    path = Path(path)
    data = read_mapping(path, what="benchmark file", example="model: testbed-gpt2")
    return structure_bench_config(data, where=path.name, base_dir=path.parent, source=str(path))


__all__ = ["BenchConfig", "DatasetSpec", "MethodEntry", "PlannedRun", "converter",
           "load_bench_config", "structure_bench_config"]
