"""Evaluate editing methods on a dataset: the runner behind ``editmethods eval`` and ``bench``.

Modes (how the requests are edited):

``single``
    each request is edited alone, measured, and rolled back before the next (ROME's and
    EasyEdit's default protocol): every edit starts from the unedited model.
``batch``
    all requests in one edit (methods that declare ``batch=True``), measured, rolled back.
``sequential``
    the requests edited one after another, each on the model the previous ones left; all
    measured after the last edit, then every edit rolled back. Locality compares against the
    unedited model's predictions.

Results keep their protocols apart (:class:`~editmethods.eval_report.EvalReport` groups by
protocol); the cost of editing is reported under the protocol ``cost``: ``seconds_per_edit``
(the median over edits of the wall time of ``Editor.edit``, from the edit handles; a batch
edit's time divided by its requests) and ``peak_memory_mb`` (the median over edits of the
memory allocated during the edit above what was allocated before it: on CUDA the peak of
``torch.cuda.max_memory_allocated``; on CPU the peak of malloc'd bytes, sampled every 2 ms,
which torch's CPU tensors are; see :class:`PeakMemory`). Their details give the mean, the
total and the largest edit.

>>> from editmethods.evaluation.benchmarking import evaluate_method             # doctest: +SKIP
>>> run = evaluate_method(editor, "ft", "ft-m.yaml", requests, mode="single")  # doctest: +SKIP
>>> print(run.report)                                                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import statistics
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import torch

from editmethods.editor import Editor, HParamsSource
from editmethods.errors import EditmethodsError, RequestError
from editmethods.eval_report import EvalReport
from editmethods.evaluation.metrics.counterfact import harmonic_mean
from editmethods.evaluation.reporting import benchmark_chart, benchmark_markdown
from editmethods.fingerprint import model_fingerprint
from editmethods.hparams import shipped_hparams
from editmethods.plugins import Plugins
from editmethods.types import EditHandle, EditRequest, MetricResult

MODES = ("single", "batch", "sequential")
COST = "cost"


# -- measuring the cost of an edit ------------------------------------------------------------
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


_MALLINFO: Any = False  # not looked up yet


def _heap_bytes() -> int | None:
    """Bytes allocated through malloc and not freed (glibc ``mallinfo2``), or ``None``.

    torch's CPU tensors are malloc'd, so this rises and falls with them, unlike the resident
    set size, which keeps freed pages.
    """
    global _MALLINFO
    if _MALLINFO is False:
        _MALLINFO = None
        try:
            import ctypes
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fields = ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks "
                      "keepcost").split()

            class MallInfo2(ctypes.Structure):
                _fields_ = [(name, ctypes.c_size_t) for name in fields]

            libc.mallinfo2.restype = MallInfo2
            libc.mallinfo2()
            _MALLINFO = libc.mallinfo2
        except (OSError, AttributeError):
            _MALLINFO = None
    if _MALLINFO is None:
        return None
    info = _MALLINFO()
    return int(info.uordblks + info.hblkhd)


class PeakMemory:
    """Peak memory of a block above what was in use when it started (bytes in :attr:`peak`).

    On a CUDA device the allocator's own peak counter is used (``cuda-max-allocated``). On
    CPU a background thread samples, every ``interval`` seconds, the bytes malloc'd and not
    freed (glibc ``mallinfo2``: ``cpu-heap``), or where that is unavailable the resident set
    size (``rss``); torch's CPU allocations are invisible to :mod:`tracemalloc`. Sampling can
    miss a peak shorter than the interval.
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak = 0
        #: What the CPU sampling reads (unused on CUDA, whose allocator keeps its own peak).
        self._read: Callable[[], int | None] = _rss_bytes
        if device.type == "cuda":
            self.kind = "cuda-max-allocated"
        elif _heap_bytes() is not None:
            self.kind, self._read = "cpu-heap", _heap_bytes
        else:
            self.kind = "rss"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._base = self._read() or 0
            self._max = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = self._read()
            if now is not None and now > self._max:
                self._max = now
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = max(0, torch.cuda.max_memory_allocated(self.device) - self._base)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak = max(0, max(self._max, self._read() or 0) - self._base)


class CaseLog(Protocol):
    """Where :func:`evaluate_method` keeps the cases of a ``single`` run as they finish
    (:class:`editmethods.evaluation.bench_store.CaseFile` writes them next to the run's result)."""

    def read(self) -> dict[int, dict[str, Any]]:
        """The finished cases by index (empty when none, or when they were for another run)."""

    def write(self, index: int, entry: dict[str, Any]) -> None:
        """Keep case ``index`` (written before the next case starts)."""


def _restore_case(kept: Mapping[str, Any], request: EditRequest, reports: list[EvalReport],
                  seconds: list[float], peaks: list[int], failures: list[dict[str, Any]],
                  failed: set[int]) -> None:
    if kept.get("report") is not None:
        reports.append(EvalReport.from_dict(kept["report"]))
    seconds.extend(float(x) for x in kept.get("seconds", ()))
    peaks.extend(int(x) for x in kept.get("peaks", ()))
    if kept.get("failures"):
        failures.extend(kept["failures"])
        failed.add(id(request))


# -- merging per-edit reports ---------------------------------------------------------------
def merge_reports(reports: Iterable[EvalReport]) -> EvalReport:
    """Pool reports of separate edits (``single`` mode) into one.

    A metric's value is the mean of the pooled per-case values (or the ``n``-weighted mean
    when a metric has none); a harmonic-mean score is recomputed from the pooled metrics it
    combines. Metrics of different protocols are never combined.
    """
    pooled: dict[tuple[str, str], list[MetricResult]] = {}
    for report in reports:
        for r in report:
            pooled.setdefault((r.protocol, r.name), []).append(r)
    merged: dict[tuple[str, str], MetricResult] = {}
    for (protocol, name), parts in pooled.items():
        if "harmonic_mean_of" in parts[0].details:
            continue
        per_case = [v for p in parts for v in p.per_case]
        n = sum(p.n for p in parts)
        if per_case:
            value = sum(per_case) / len(per_case)
        else:
            finite = [p for p in parts if not math.isnan(p.value)]
            total = sum(p.n for p in finite)
            value = sum(p.value * p.n for p in finite) / total if total else float("nan")
        details: dict[str, Any] = {}
        for p in parts:
            for k, v in p.details.items():
                if k.startswith("value_"):
                    continue  # a rate of one part (e.g. value_including_rewritten): not poolable
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    details[k] = details.get(k, 0) + v
                elif k not in details and k != "by_kind":
                    details[k] = v
        merged[(protocol, name)] = MetricResult(name, value, protocol, n, per_case=per_case,
                                                details=details)
    for (protocol, name), parts in pooled.items():
        if "harmonic_mean_of" not in parts[0].details:
            continue
        of = parts[0].details["harmonic_mean_of"]
        have = [merged[(protocol, m)] for m in of if (protocol, m) in merged]
        if len(have) == len(of):  # every metric it combines was pooled
            merged[(protocol, name)] = MetricResult(
                name, harmonic_mean([h.value for h in have]), protocol,
                max(h.n for h in have), details={"harmonic_mean_of": list(of)})
    return EvalReport(tuple(merged.values()))


# -- one method -------------------------------------------------------------------------------
@attrs.frozen
class MethodRun:
    """A method to benchmark, with its hyper-parameters and the label its row gets."""

    label: str
    method: str
    hparams: Any = None
    #: Field values that replace those of ``hparams`` (e.g. ROME's ``variant``).
    overrides: Mapping[str, Any] = attrs.field(factory=dict)


def _mapping_tuple(items: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(items)


@attrs.frozen
class RunResult:
    """What :func:`evaluate_method` measured for one method."""

    label: str
    method: str
    mode: str
    n: int
    report: EvalReport
    hparams: Mapping[str, Any] = attrs.field(factory=dict)
    #: Requests whose edit failed: ``[{"case_id", "error"}]`` (they are left out of the report).
    failures: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_mapping_tuple)
    #: Whether every weight and buffer was bit-identical to the unedited model afterwards.
    restored: bool = True

    def to_dict(self, *, per_case: bool = False) -> dict[str, Any]:
        return {"label": self.label, "method": self.method, "mode": self.mode, "n": self.n,
                "hparams": dict(self.hparams), "metrics": self.report.to_dict(per_case=per_case),
                "failures": [dict(f) for f in self.failures], "restored": self.restored}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """The result :meth:`to_dict` wrote."""
        return cls(label=data["label"], method=data["method"], mode=data["mode"], n=data["n"],
                   report=EvalReport.from_dict(data["metrics"]), hparams=data.get("hparams", {}),
                   failures=data.get("failures", ()), restored=data.get("restored", True))


def _progress(iterable: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="edit", leave=False)


def _cost_results(handles_seconds: list[float], n_requests: int, peaks: list[int],
                  kind: str) -> list[MetricResult]:
    """``seconds_per_edit`` and ``peak_memory_mb``: medians over edits (a batch edit is one
    edit of many requests: its time is divided by them)."""
    per_edit = list(handles_seconds)
    out = []
    if per_edit and n_requests:
        total = sum(per_edit)
        details: dict[str, Any] = {"total_seconds": total, "mean": total / n_requests}
        if len(per_edit) == n_requests:
            value, per_case = statistics.median(per_edit), per_edit
            details["statistic"] = "median"
        else:
            value, per_case = total / n_requests, []
            details["statistic"] = "total/requests"
        out.append(MetricResult("seconds_per_edit", value, COST, n_requests, per_case=per_case,
                                details=details))
    if peaks:
        mib = [p / 2**20 for p in peaks]
        out.append(MetricResult("peak_memory_mb", statistics.median(mib), COST, len(mib),
                                per_case=mib, details={"kind": kind, "statistic": "median",
                                                       "max": max(mib)}))
    return out


def _hparams_dict(hp: Any) -> dict[str, Any]:
    try:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(hp).items()}
    except Exception:  # not an attrs instance
        return {}


def evaluate_method(
    editor: Editor,
    method: str,
    hparams: HParamsSource,
    requests: Sequence[EditRequest],
    *,
    mode: str = "single",
    metrics: Iterable[str] | None = None,
    batch_size: int = 32,
    label: str | None = None,
    progress: bool = True,
    seed: int | None = 0,
    overrides: Mapping[str, Any] | None = None,
    cases: CaseLog | None = None,
) -> RunResult:
    """Edit ``requests`` with ``method`` in ``mode``, measure, and restore the model.

    :param editor: the editor holding the model; it must have no live edits.
    :param method: an installed method.
    :param hparams: a YAML/JSON path, mapping, hparams object, or ``None`` for defaults.
    :param mode: ``"single"``, ``"batch"`` or ``"sequential"`` (see the module docs).
    :param metrics: metric names to compute (``None``: every metric whose inputs exist).
    :param seed: ``torch.manual_seed`` before the run (``None``: leave the generator alone).
    :param overrides: hyper-parameter values that replace those of ``hparams``.
    :param cases: in ``single`` mode, where each finished case is written as it finishes
        and read back instead of being run again (a long run resumes where it stopped). Each
        case is seeded with ``seed + its index``, so a resumed run computes what an
        uninterrupted one would.
    :return: a :class:`RunResult`; edits that raised are listed in ``failures`` and left
        out of the report.
    :raises EditmethodsError: on bad input (unknown method, bad hparams, bad mode) before
        anything is edited.
    """
    if mode not in MODES:
        raise RequestError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    requests = list(requests)
    if not requests:
        raise RequestError("no requests to evaluate")
    if editor.edits:
        raise EditmethodsError("the editor has live edits: roll them back before benchmarking")
    from editmethods.hparams import load_hparams

    installed = editor.plugins.method(method)
    hp = load_hparams(installed.spec.hparams_class, hparams, method=method, **dict(overrides or {}))
    if mode == "batch" and len(requests) > 1 and not installed.spec.batch:
        raise EditmethodsError(
            f"method {method!r} does not edit batches; use --mode single or sequential")
    label = label or method
    metrics = list(metrics) if metrics else None
    if seed is not None:
        torch.manual_seed(seed)
    before = model_fingerprint(editor.model, buffers=True)
    device = next(editor.model.parameters()).device
    failures: list[dict[str, Any]] = []
    failed: set[int] = set()
    seconds: list[float] = []
    peaks: list[int] = []
    kind = PeakMemory(device).kind
    if metrics is None or "gen_locality" in metrics:
        # the wild protocol's locality compares with what the unedited model says
        editor.remember_unedited(requests, generation=True, batch_size=batch_size)

    def edit(batch: list[EditRequest], **kwargs: Any) -> EditHandle | list[EditHandle] | None:
        with PeakMemory(device) as mem:
            try:
                result = editor.edit(batch if len(batch) > 1 else batch[0], method, hp, **kwargs)
            except EditmethodsError as exc:
                failures.extend({"case_id": r.case_id, "error": str(exc)} for r in batch)
                failed.update(id(r) for r in batch)
                return None
        peaks.append(mem.peak)
        handles = result if isinstance(result, list) else [result]
        seconds.extend(h.seconds for h in handles)
        return result

    reports: list[EvalReport] = []
    try:
        if mode == "single":
            finished = cases.read() if cases is not None else {}
            for index, r in enumerate(_progress(requests, len(requests), label, progress)):
                kept = finished.get(index)
                if kept is not None:  # finished in an earlier, interrupted run
                    _restore_case(kept, r, reports, seconds, peaks, failures, failed)
                    continue
                if seed is not None:
                    torch.manual_seed(seed + index)
                n_failures, n_seconds, n_peaks = len(failures), len(seconds), len(peaks)
                report = None
                if edit([r]) is not None:
                    report = editor.evaluate([r], metrics=metrics, batch_size=batch_size)
                    reports.append(report)
                    editor.rollback_all()
                if cases is not None:
                    cases.write(index, {
                        "report": report.to_dict(per_case=True) if report is not None else None,
                        "seconds": seconds[n_seconds:], "peaks": peaks[n_peaks:],
                        "failures": failures[n_failures:]})
        else:
            # Locality compares against the unedited model for every request.
            editor.remember_unedited(requests)
            if mode == "batch":
                done = edit(requests)
            else:
                done = []
                for r in _progress(requests, len(requests), label, progress):
                    if edit([r]) is not None:
                        done.append(r)
            if done:
                edited = [r for r in requests if id(r) not in failed]
                reports.append(editor.evaluate(edited, metrics=metrics, batch_size=batch_size))
    finally:
        editor.rollback_all()
    report = merge_reports(reports)
    n_ok = len(requests) - len(failures)
    report = EvalReport(report.results + tuple(_cost_results(seconds, n_ok, peaks, kind)))
    return RunResult(label=label, method=method, mode=mode, n=len(requests), report=report,
                     hparams=_hparams_dict(hp), failures=failures,
                     restored=model_fingerprint(editor.model, buffers=True) == before)


def evaluate_unedited(editor: Editor, requests: Sequence[EditRequest], *, mode: str = "single",
                      metrics: Iterable[str] | None = None, batch_size: int = 32) -> EvalReport:
    """The unedited model's scores on the same requests (the baseline row of a table).

    The requests are grouped as the methods' runs group them (``mode``): one at a time in
    ``single`` mode, all together otherwise, so that the same locality pairs count (pairs that
    another request of a group rewrites are left out, see ``editmethods.evaluation.metrics.overlap``).
    Locality metrics (``locality*``, ``gen_locality``) are left out: they compare the model
    with itself before the edit.
    """
    if mode == "single":
        report = merge_reports(editor.evaluate([r], metrics=metrics, batch_size=batch_size)
                               for r in requests)
    else:
        report = editor.evaluate(list(requests), metrics=metrics, batch_size=batch_size)
    return EvalReport(tuple(r for r in report if not _compares_with_unedited(r.name)))


def _compares_with_unedited(name: str) -> bool:
    return name.startswith("locality") or name == "gen_locality"


# -- several methods --------------------------------------------------------------------------
def _run_tuple(runs: Iterable[RunResult]) -> tuple[RunResult, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(runs)


@attrs.frozen
class BenchmarkResult:
    """Results of several methods on the same model and requests."""

    model: str
    data: str
    mode: str
    n: int
    unedited: EvalReport
    runs: tuple[RunResult, ...] = attrs.field(converter=_run_tuple)
    #: Methods that were not run: label -> reason.
    skipped: Mapping[str, str] = attrs.field(factory=dict)
    device: str = "cpu"
    #: Records of ``data`` skipped before the first case.
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "offset": self.offset, "mode": self.mode,
                "n": self.n, "device": self.device, "unedited": self.unedited.to_dict(),
                "runs": [r.to_dict() for r in self.runs], "skipped": dict(self.skipped)}

    def to_markdown(self) -> str:
        return benchmark_markdown(self)

    def plot(self, path: str | Path) -> Path:
        return benchmark_chart(self, path)


def run_benchmark(
    editor: Editor,
    runs: Sequence[MethodRun],
    requests: Sequence[EditRequest],
    *,
    mode: str = "single",
    metrics: Iterable[str] | None = None,
    batch_size: int = 32,
    model_name: str = "",
    data_name: str = "",
    progress: bool = True,
    on_update: Callable[[BenchmarkResult], None] | None = None,
) -> BenchmarkResult:
    """Run every method in ``runs`` on the same model and requests.

    Methods that are not installed, or do not support the model or the mode, are skipped with
    the reason in :attr:`BenchmarkResult.skipped`.

    :param on_update: called with the results so far after each method (e.g. to write them,
        so that a long benchmark that is stopped keeps what it finished).
    """
    metrics = list(metrics) if metrics else None
    skipped: dict[str, str] = {}
    done: list[RunResult] = []
    runs = [resolve_run(editor.plugins, run, model_name) for run in runs]
    model_type = getattr(editor.model.config, "model_type", "?")
    unedited = evaluate_unedited(editor, requests, mode=mode, metrics=metrics,
                                 batch_size=batch_size)
    todo = []
    for run in runs:
        reason = skip_reason(editor.plugins, run, model_type, mode, len(requests))
        if reason:
            skipped[run.label] = reason
        else:
            todo.append(run)
    device = str(next(editor.model.parameters()).device)

    def result() -> BenchmarkResult:
        return BenchmarkResult(model=model_name, data=data_name, mode=mode, n=len(requests),
                               unedited=unedited, runs=list(done), skipped=dict(skipped),
                               device=device)

    for run in _progress(todo, len(todo), "methods", progress and len(todo) > 1):
        try:
            done.append(evaluate_method(editor, run.method, run.hparams, requests, mode=mode,
                                        metrics=metrics, batch_size=batch_size, label=run.label,
                                        progress=progress, overrides=run.overrides))
        except EditmethodsError as exc:
            skipped[run.label] = f"failed: {exc}"
        if on_update is not None:
            on_update(result())
    return result()


#: ``MethodRun.hparams`` value that asks for the method package's file for the model alias;
#: ``"reference:<variant>"`` asks for the package's file of that variant for the alias
#: (``hparams/<variant>-<alias>.yaml`` or ``hparams/<alias>-<variant>.yaml``, e.g.
#: ``reference:ft-l`` for FT-L next to FT-M in the ft package).
REFERENCE = "reference"


def is_reference(hparams: Any) -> bool:
    """Whether ``hparams`` is ``"reference"`` or ``"reference:<variant>"``."""
    return isinstance(hparams, str) and (hparams == REFERENCE or hparams.startswith(REFERENCE + ":"))


def _variant(hparams: str) -> str | None:
    return hparams.partition(":")[2] or None


def reference_names(method: str, model_name: str, variant: str | None = None) -> tuple[str, ...]:
    """The file stems (in ``hparams/``) that a reference lookup tries, in order."""
    if variant:
        return (f"{variant}-{model_name}", f"{model_name}-{variant}")
    return (model_name, f"{method}-{model_name}")


def resolve_run(plugins: Plugins, run: MethodRun, model_name: str) -> MethodRun:
    """``run`` with a ``reference`` hparams value replaced by the file found, if any."""
    if not is_reference(run.hparams):
        return run
    found = reference_hparams(plugins, run.method, model_name, variant=_variant(run.hparams))
    return attrs.evolve(run, hparams=found) if found is not None else run



def skip_reason(plugins: Plugins, run: MethodRun, model_type: str | None, mode: str,
                n: int) -> str | None:
    """Why ``run`` (after :func:`resolve_run`) cannot run, or ``None``; ``model_type=None``
    leaves the model check out (the model is not loaded yet)."""
    if run.method not in plugins.methods:
        return f"method {run.method!r} is not installed (pip install editmethods-{run.method})"
    if is_reference(run.hparams):
        names = " or ".join(f"hparams/{n}.yaml" for n in
                            reference_names(run.method, "<model alias>", _variant(run.hparams)))
        return (f"its package ships no reference hyper-parameters for this model "
                f"({names} next to its plugin module)")
    spec = plugins.methods[run.method].spec
    if model_type is not None and not spec.supports(model_type):
        return f"does not support model type {model_type!r}"
    if mode == "batch" and n > 1 and not spec.batch:
        return "edits one fact at a time (not a batch method)"
    if isinstance(run.hparams, (str, Path)) and not Path(run.hparams).is_file():
        return f"hyper-parameter file {run.hparams} not found"
    return None



def reference_hparams(plugins: Plugins, method: str, model_name: str,
                      variant: str | None = None) -> Path | None:
    """The hyper-parameters a method package ships for a model alias, if any.

    Convention: a method package keeps hyper-parameters tuned for a reference model next to
    its plugin module as ``hparams/<alias>.yaml`` (e.g. ``hparams/testbed-gpt2.yaml``); a
    package with several variants of a method (FT-L and FT-M) ships the others as
    ``hparams/<variant>-<alias>.yaml`` (see :func:`reference_names`).
    """
    if method not in plugins.methods:
        return None
    plugin = plugins.methods[method].plugin
    module_file = getattr(plugin, "__file__", None)
    if module_file is None:
        import sys

        module_file = getattr(sys.modules.get(type(plugin).__module__), "__file__", None)
    if module_file is None:
        return None
    for name in reference_names(method, model_name, variant):
        try:
            return shipped_hparams(module_file, name, method=method)
        except FileNotFoundError:
            continue
    return None


__all__ = ["BenchmarkResult", "MODES", "REFERENCE", "MethodRun", "PeakMemory",
           "RunResult", "evaluate_method", "evaluate_unedited", "is_reference", "merge_reports",
           "reference_hparams", "reference_names", "resolve_run", "run_benchmark", "skip_reason"]
