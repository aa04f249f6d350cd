"""Run a benchmark file resumably: every (method, dataset) run is kept as it finishes.

>>> from editmethods.evaluation.bench_config import load_bench_config          # doctest: +SKIP
>>> suite = run_suite(load_bench_config("benchmarks/smollm2.yaml"),  # doctest: +SKIP
...                   "benchmarks/results/smollm2")
>>> print(suite.to_markdown())                                      # doctest: +SKIP

Each finished run is written to ``<out>/runs/<dataset>/<label>.json`` (``editmethods.evaluation.bench_store``)
before the next starts. A later call skips every run whose file holds the same key (model,
method, hyper-parameter file content, overrides, data file content, offset, n, mode, metrics),
runs the rest, and renders the tables from all of them; ``force=True`` runs everything again.
A run that raises is reported under the table (``failed``/``crashed``) and the next one
starts, unless the model could not be restored, which stops the suite (the finished files stay).
The model is loaded only when some run has to be computed.
"""

from __future__ import annotations

import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from editmethods.errors import EditmethodsError
from editmethods.eval_report import EvalReport
from editmethods.evaluation.bench_config import BenchConfig, DatasetSpec, PlannedRun
from editmethods.evaluation.bench_store import (
    CaseFile,
    ResultStore,
    atomic_write_json,
    atomic_write_text,
    canonical,
    sha256_file,
)
from editmethods.evaluation.benchmarking import (
    BenchmarkResult,
    RunResult,
    evaluate_method,
    evaluate_unedited,
    resolve_run,
    skip_reason,
)
from editmethods.evaluation.reporting import suite_chart, suite_markdown, suite_summary
from editmethods.fingerprint import model_fingerprint

Echo = Callable[[str], None]


@attrs.frozen
class DatasetResult:
    """One dataset's table: the unedited model and every run on it."""

    name: str
    spec: DatasetSpec
    result: BenchmarkResult


def _dataset_tuple(datasets: Iterable[DatasetResult]) -> tuple[DatasetResult, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(datasets)


@attrs.frozen
class SuiteResult:
    """Every dataset's results for one model."""

    model: str
    device: str
    datasets: tuple[DatasetResult, ...] = attrs.field(converter=_dataset_tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device,
                "datasets": {d.name: d.result.to_dict() for d in self.datasets}}

    def to_markdown(self) -> str:
        return suite_markdown(self)

    def summary(self) -> str:
        """The headline tables with their notes (what the README shows)."""
        return suite_summary(self)

    def plot(self, path: str | Path) -> Path:
        return suite_chart(self, path)


# -- keys -------------------------------------------------------------------------------------
def _data_key(config: BenchConfig, spec: DatasetSpec) -> dict[str, Any]:
    from editmethods.evaluation.loaders import resolve_data_path

    path = resolve_data_path(config.data_path(spec))
    return {"data": Path(path).name, "data_sha256": sha256_file(path), "offset": spec.offset,
            "n": spec.n, "format": spec.format}


def _hparams_key(hparams: Any) -> Any:
    if hparams is None:
        return "method defaults"
    if isinstance(hparams, Mapping):
        return {"inline": canonical(dict(hparams))}
    if isinstance(hparams, (str, Path)):
        return {"file": Path(hparams).name, "sha256": sha256_file(hparams)}
    return {"object": repr(hparams)}


def run_key(config: BenchConfig, planned: PlannedRun) -> dict[str, Any]:
    """What a run's numbers depend on (``planned.run.hparams`` already resolved)."""
    return {"model": config.model, "method": planned.run.method,
            "hparams": _hparams_key(planned.run.hparams),
            "overrides": canonical(dict(planned.run.overrides)), "mode": planned.mode,
            "metrics": sorted(config.metrics) if config.metrics else None,
            **_data_key(config, planned.spec)}


def unedited_key(config: BenchConfig, name: str) -> dict[str, Any]:
    spec = config.datasets[name]
    return {"model": config.model, "method": None, "mode": config.dataset_mode(name),
            "metrics": sorted(config.metrics) if config.metrics else None,
            **_data_key(config, spec)}


# -- running ----------------------------------------------------------------------------------
def _max_rss_mb() -> float:
    """The process's resident-set high-water mark so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Session:
    """The model and the requests, loaded when first needed."""

    def __init__(self, config: BenchConfig, load_editor: Callable[[], Any], echo: Echo) -> None:
        self.config = config
        self._load = load_editor
        self.echo = echo
        self.editor: Any = None
        self.digest = ""
        self._requests: dict[str, list[Any]] = {}

    def get_editor(self) -> Any:
        if self.editor is None:
            start = time.perf_counter()
            self.editor = self._load()
            self.digest = model_fingerprint(self.editor.model, buffers=True)
            self.echo(f"loaded {self.config.model} in {time.perf_counter() - start:.1f} s")
        return self.editor

    def requests(self, name: str, n: int | None) -> list[Any]:
        """The first ``n`` cases of dataset ``name`` (all for ``None``)."""
        from editmethods.evaluation.loaders import load_requests

        if name not in self._requests:
            spec = self.config.datasets[name]
            sizes = [p.spec.n for p in self.config.plan() if p.dataset == name] + [spec.n]
            limit = None if any(s is None for s in sizes) else max(s for s in sizes if s)
            self._requests[name] = load_requests(self.config.data_path(spec), format=spec.format,
                                                 limit=limit, offset=spec.offset)
        cases = self._requests[name]
        return cases if n is None else cases[:n]

    def device(self) -> str:
        if self.editor is None:
            return "cpu"
        return str(next(self.editor.model.parameters()).device)


def _data_problem(config: BenchConfig, spec: DatasetSpec) -> str | None:
    from editmethods.evaluation.loaders import resolve_data_path

    try:
        path = resolve_data_path(config.data_path(spec))
    except EditmethodsError as exc:
        return str(exc)
    if not Path(path).is_file():
        return f"data file {spec.data} not found ({path})"
    return None


def run_suite(
    config: BenchConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    only: Sequence[str] = (),
    progress: bool = True,
    batch_size: int = 32,
    echo: Echo | None = None,
    load_editor: Callable[[], Any] | None = None,
    plugins: Any = None,
    chart: bool = True,
) -> SuiteResult:
    """Run every (method, dataset) run of ``config`` not yet finished in ``out_dir``.

    :param force: run again the runs whose results are there (with ``only``: those runs;
        without: every run and the unedited baselines).
    :param only: labels to run in this call (the others are read if finished, else listed
        as not run yet); empty: all.
    :param echo: where progress lines go (default: stderr).
    :param load_editor: returns the ``Editor`` (default ``Editor.from_pretrained(config.model)``).
    :param plugins: the plugin manager (default: the editor's, or the process-wide one).
    :param chart: write ``bench.png`` at the end.
    :return: the results of every run of ``config`` found or computed; ``bench.md``,
        ``bench.json`` (after each run) and ``bench.png`` (at the end) are written to ``out_dir``.
    """
    from editmethods import Editor
    from editmethods.plugins import get_plugins

    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    store = ResultStore(out_dir)
    session = _Session(config, load_editor or (lambda: Editor.from_pretrained(config.model)), echo)
    plugins = plugins if plugins is not None else get_plugins()
    plan = config.plan()
    unedited: dict[str, tuple[EvalReport, int]] = {}  # dataset -> report, cases
    done: dict[str, list[RunResult]] = {name: [] for name in config.datasets}
    skipped: dict[str, dict[str, str]] = {name: {} for name in config.datasets}
    suite_start = time.perf_counter()

    def suite() -> SuiteResult:
        out = []
        for name, spec in config.datasets.items():
            base, n = unedited.get(name, (EvalReport(()), spec.n or 0))
            out.append(DatasetResult(name, spec, BenchmarkResult(
                model=config.model, data=spec.data, offset=spec.offset,
                mode=config.dataset_mode(name), n=n, unedited=base, runs=tuple(done[name]),
                skipped=dict(skipped[name]), device=session.device())))
        return SuiteResult(config.model, session.device(), tuple(out))

    def save() -> None:
        result = suite()
        atomic_write_text(Path(out_dir) / "bench.md", result.to_markdown())
        atomic_write_json(Path(out_dir) / "bench.json", result.to_dict())

    todo = len(plan)
    for index, planned in enumerate(plan, 1):
        name, label = planned.dataset, planned.run.label
        where = f"[{index}/{todo}] {label} on {name}"
        problem = _data_problem(config, planned.spec)
        if problem:
            skipped[name][label] = problem
            continue
        if name not in unedited:
            unedited[name] = _unedited(config, name, store, session, force and not only,
                                       batch_size)
        resolved = attrs.evolve(planned, run=resolve_run(plugins, planned.run, config.model))
        reason = skip_reason(plugins, resolved.run, None, resolved.mode, resolved.spec.n or 2)
        if reason:
            skipped[name][label] = reason
            echo(f"{where}: skipped: {reason}")
            continue
        key = run_key(config, resolved)
        path = store.run_path(name, label)
        record = None if force and (not only or label in only) else store.read(path, key)
        if record is not None:
            done[name].append(RunResult.from_dict(record["result"]))
            echo(f"{where}: finished earlier ({record.get('wall_seconds', 0):.1f} s), kept")
            continue
        if only and label not in only:
            skipped[name][label] = "not run yet"
            continue
        editor = session.get_editor()
        model_type = getattr(editor.model.config, "model_type", "?")
        reason = skip_reason(editor.plugins, resolved.run, model_type, resolved.mode,
                             resolved.spec.n or 2)
        if reason:
            skipped[name][label] = reason
            continue
        requests = session.requests(name, resolved.spec.n)
        cases = CaseFile(store.cases_path(name, label), key)
        if force and (not only or label in only):
            cases.remove()
        resumed = len(cases.read())
        echo(f"{where}: {len(requests)} cases, mode {resolved.mode}"
             + (f", resuming after {resumed} finished earlier" if resumed else "") + " ...")
        start = time.perf_counter()
        try:
            result = evaluate_method(editor, resolved.run.method, resolved.run.hparams, requests,
                                     mode=resolved.mode, metrics=config.metrics,
                                     batch_size=batch_size, label=label, progress=progress,
                                     overrides=resolved.run.overrides, cases=cases)
        except EditmethodsError as exc:
            skipped[name][label] = f"failed: {exc}"
            echo(f"{where}: failed: {exc}")
            continue
        except Exception as exc:  # a bug in one method must not end a long benchmark
            echo(f"{where}: crashed:\n{traceback.format_exc()}")
            skipped[name][label] = f"crashed: {type(exc).__name__}: {exc}"
            editor.rollback_all()
            if model_fingerprint(editor.model, buffers=True) != session.digest:
                save()
                raise EditmethodsError(
                    f"{label} crashed and the model could not be restored; stopped (finished "
                    f"runs are kept in {out_dir})") from exc
            continue
        wall = time.perf_counter() - start
        store.write(path, key, dataset=name, label=label, wall_seconds=wall,
                    resumed_cases=resumed, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), process_max_rss_mb=_max_rss_mb(),
                    result=result.to_dict(per_case=True))
        cases.remove()  # the run's result holds them now
        done[name].append(result)
        echo(f"{where}: done in {wall:.1f} s ({wall / max(1, len(requests)):.2f} s per case)")
        save()
    save()
    final = suite()
    if chart and any(d.result.runs for d in final.datasets):
        try:
            final.plot(Path(out_dir) / "bench.png")
        except ImportError:
            echo("matplotlib is not installed: no chart (pip install 'editmethods[plots]')")
    echo(f"{config.source or 'benchmark'}: {time.perf_counter() - suite_start:.1f} s in all")
    return final


def _unedited(config: BenchConfig, name: str, store: ResultStore, session: _Session, force: bool,
              batch_size: int) -> tuple[EvalReport, int]:
    """The unedited model's report on dataset ``name`` and its number of cases."""
    key = unedited_key(config, name)
    path = store.unedited_path(name)
    record = None if force else store.read(path, key)
    if record is not None:
        return EvalReport.from_dict(record["result"]["metrics"]), int(record["result"]["n"])
    editor = session.get_editor()
    requests = session.requests(name, config.datasets[name].n)
    start = time.perf_counter()
    report = evaluate_unedited(editor, requests, mode=config.dataset_mode(name),
                               metrics=config.metrics, batch_size=batch_size)
    wall = time.perf_counter() - start
    store.write(path, key, dataset=name, label="unedited model", wall_seconds=wall,
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                result={"n": len(requests), "metrics": report.to_dict(per_case=True)})
    session.echo(f"unedited model on {name}: {len(requests)} cases in {wall:.1f} s")
    return report, len(requests)


__all__ = ["DatasetResult", "SuiteResult", "run_key", "run_suite", "unedited_key"]
