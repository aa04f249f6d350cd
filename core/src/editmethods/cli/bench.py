"""``editmethods bench``: several methods on the same cases of one model, on one or more
datasets, resumably; Markdown, JSON, PNG."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import click

from editmethods.cli._common import data_options, model_options, parse_metrics


def _parse_method(text: str):
    """``LABEL=METHOD:HPARAMS``, ``METHOD:HPARAMS`` or ``METHOD`` (hparams: a file,
    ``reference`` or ``reference:<variant>``)."""
    from editmethods.evaluation.benchmarking import REFERENCE, MethodRun, is_reference

    label, _, rest = text.rpartition("=") if "=" in text else ("", "", text)
    method, _, hparams = rest.partition(":")  # "ft:reference:ft-l" -> ft, reference:ft-l
    value = hparams if hparams else REFERENCE
    return MethodRun(label=label or method, method=method,
                     hparams=value if is_reference(value) else str(Path(value)))


def _config(config_path, model_name, methods, data, n, offset, mode, metrics, data_format,
            datasets):
    from editmethods.evaluation.bench_config import BenchConfig, DatasetSpec, load_bench_config

    config = load_bench_config(config_path) if config_path else None
    if data:
        stem = Path(str(data).split(":", 1)[-1]).stem or "data"
        spec = DatasetSpec(data=str(data), n=n, offset=offset or 0, format=data_format)
        config = (BenchConfig(model=model_name or "", datasets={stem: spec}, methods=())
                  if config is None else _replace_data(config, stem, spec))
    runs = [_parse_method(m) for m in methods]
    if config is None or not (model_name or config.model) or not (runs or config.methods):
        raise click.UsageError("give --model, --data and at least one --method (or --config)")
    if model_name:
        config = attrs.evolve(config, model=model_name)
    config = config.with_overrides(n=n, mode=mode, offset=offset, datasets=datasets, methods=runs)
    wanted = parse_metrics(metrics)
    if wanted:
        config = attrs.evolve(config, metrics=tuple(wanted))
    return config


def _replace_data(config, name, spec):
    return attrs.evolve(config, datasets={name: spec},
                        methods=tuple(attrs.evolve(m, datasets=None) for m in config.methods))


def register(cli: click.Group) -> None:
    @cli.command(name="bench")
    @click.option("--config", "config_path", default=None,
                  type=click.Path(exists=True, dir_okay=False),
                  help="Benchmark file (YAML: model, datasets, methods; see docs/evaluation.md); "
                       "options override it.")
    @click.option("--model", "model_name", default=None,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--method", "methods", multiple=True,
                  help="LABEL=METHOD:HPARAMS_FILE (repeatable); HPARAMS 'reference' or left out = "
                       "the package's file for this model alias; replaces the file's methods.")
    @click.option("--data", default=None,
                  help="Data file (or pkg:PACKAGE/path); replaces the file's datasets.")
    @click.option("--dataset", "datasets", multiple=True,
                  help="Only this dataset of the file (repeatable).")
    @click.option("--only", "only", multiple=True,
                  help="Run only this label now (repeatable); the table still shows every "
                       "finished run.")
    @click.option("--force", is_flag=True,
                  help="Run again the runs whose results are already in --out-dir.")
    @click.option("--out-dir", default="bench-results", type=click.Path(file_okay=False),
                  show_default=True,
                  help="Where bench.md, bench.json, bench.png and runs/ (one JSON per run) go.")
    @data_options
    @model_options
    def bench_command(config_path, model_name, methods, data, datasets, only, force, out_dir, n,
                      offset, mode, metrics, data_format, no_progress, device, dtype,
                      gguf_file) -> None:
        """Run several methods on the same cases of one model and tabulate the results.

        Each (method, dataset) run is written to OUT_DIR/runs/ as it finishes; running the
        same command again skips the finished runs (same model, method, hparams file content,
        data, offset, n, mode) and renders the tables from all of them.
        """
        from editmethods import EditmethodsError, Editor
        from editmethods.evaluation.bench_suite import run_suite

        start = time.perf_counter()
        try:
            config = _config(config_path, model_name, methods, data, n, offset, mode, metrics,
                             data_format, datasets)

            def load():
                return Editor.from_pretrained(config.model, gguf_file=gguf_file, dtype=dtype,
                                              device=device)

            result = run_suite(config, out_dir, force=force, only=only, progress=not no_progress,
                               echo=lambda line: click.echo(line, err=True), load_editor=load)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(result.summary())
        out = Path(out_dir)
        written = [out / "bench.md", out / "bench.json"]
        if any(d.result.runs for d in result.datasets):
            written.append(out / "bench.png")
        click.echo("wrote " + ", ".join(str(p) for p in written)
                   + f" ({time.perf_counter() - start:.1f} s)")
