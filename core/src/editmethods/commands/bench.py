"""``editmethods bench``: several methods on the same model and cases; Markdown, JSON, PNG."""

from __future__ import annotations

from pathlib import Path

import click

from editmethods.commands._common import data_options, model_options, split_metrics, write_json


def _parse_method(text: str):
    """``LABEL=METHOD:HPARAMS``, ``METHOD:HPARAMS`` or ``METHOD`` (hparams: a file or
    ``reference``)."""
    from editmethods.benchmarking import REFERENCE, MethodRun

    label, _, rest = text.rpartition("=") if "=" in text else ("", "", text)
    method, _, hparams = rest.partition(":")
    return MethodRun(label=label or method, method=method,
                     hparams=(hparams if hparams == REFERENCE else Path(hparams)) if hparams else REFERENCE)


def register(cli: click.Group) -> None:
    @cli.command(name="bench")
    @click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Benchmark file (YAML: model, data, n, mode, methods); options override it.")
    @click.option("--model", "model_name", default=None,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--method", "methods", multiple=True,
                  help="LABEL=METHOD:HPARAMS_FILE (repeatable); HPARAMS 'reference' or left out = "
                       "the package's file for this model alias.")
    @click.option("--data", default=None, help="Data file (or pkg:PACKAGE/path).")
    @click.option("--out-dir", default="bench-results", type=click.Path(file_okay=False),
                  show_default=True, help="Where bench.md, bench.json and bench.png go.")
    @data_options
    @model_options
    def bench_command(config_path, model_name, methods, data, out_dir, n, offset, mode, metrics,
                      data_format, no_progress, device, dtype, gguf_file) -> None:
        """Run several methods on the same cases of one model and tabulate the results."""
        from editmethods import Editor, EditmethodsError
        from editmethods.benchmarking import load_bench_config, run_benchmark
        from editmethods.loaders import load_requests

        try:
            config = load_bench_config(config_path) if config_path else {}
            model_name = model_name or config.get("model")
            data = data or config.get("data")
            runs = [_parse_method(m) for m in methods] or config.get("runs") or []
            if not model_name or not data or not runs:
                raise click.UsageError("give --model, --data and at least one --method (or --config)")
            n = n if n is not None else config.get("n")
            offset = offset if offset is not None else (config.get("offset") or 0)
            mode = mode or config.get("mode") or "single"
            wanted = split_metrics(metrics) or config.get("metrics")
            requests = load_requests(data, format=data_format, limit=n, offset=offset)
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file,
                                            dtype=dtype, device=device)
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)

            def save(partial) -> None:  # after each method: a stopped run keeps what it did
                (out / "bench.md").write_text(partial.to_markdown())
                write_json(out / "bench.json", partial.to_dict())

            result = run_benchmark(editor, runs, requests, mode=mode, metrics=wanted,
                                   model_name=str(model_name), data_name=str(data),
                                   progress=not no_progress, on_update=save)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        save(result)
        markdown = result.to_markdown()
        click.echo(markdown)
        written = [out / "bench.md", out / "bench.json"]
        if result.runs:
            try:
                written.append(result.plot(out / "bench.png"))
            except ImportError:
                click.echo("matplotlib is not installed: no chart (pip install 'editmethods[plots]')")
        click.echo("wrote " + ", ".join(str(p) for p in written))
