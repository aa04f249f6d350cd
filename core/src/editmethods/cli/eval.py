"""``editmethods eval``: one method on N cases of a dataset; a report and a JSON file."""

from __future__ import annotations

import click

from editmethods.cli._common import (
    check_writable,
    data_options,
    model_options,
    parse_metrics,
    write_json,
)


def register(cli: click.Group) -> None:
    @cli.command(name="eval")
    @click.option("--model", "model_name", required=True,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--method", required=True, help="An installed method (see `editmethods plugins`).")
    @click.option("--hparams", default=None,
                  help="Hyper-parameter file (YAML/JSON); default: the method package's file for "
                       "this model alias (hparams/<alias>.yaml), else the method's defaults.")
    @click.option("--data", required=True,
                  help="Data file (CounterFact, EasyEdit, zsRE MEND, KnowEdit; or pkg:PACKAGE/path).")
    @click.option("--out", default=None, type=click.Path(dir_okay=False),
                  help="Write the JSON report here.")
    @data_options
    @model_options
    def eval_command(model_name, method, hparams, data, out, n, offset, mode, metrics,
                     data_format, no_progress, device, dtype, gguf_file) -> None:
        """Edit N cases of a dataset with one method and report every metric by protocol."""
        from editmethods import EditmethodsError, Editor
        from editmethods.evaluation.benchmarking import (
            evaluate_method,
            evaluate_unedited,
            reference_hparams,
        )
        from editmethods.evaluation.loaders import load_requests
        from editmethods.evaluation.reporting import describe_run
        from editmethods.plugins import get_plugins
        from editmethods.request_checks import check_fits

        try:
            # Everything that can be checked without the model is checked before it loads.
            get_plugins().method(method)
            wanted = parse_metrics(metrics)
            if out:
                check_writable(out, option="--out")
            requests = load_requests(data, format=data_format, limit=n, offset=offset or 0)
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file,
                                            dtype=dtype, device=device)
            check_fits(requests, editor.model, editor.tokenizer)
            if hparams is None:
                hparams = reference_hparams(editor.plugins, method, model_name)
            unedited = evaluate_unedited(editor, requests, mode=mode or "single", metrics=wanted)
            run = evaluate_method(editor, method, hparams, requests, mode=mode or "single",
                                  metrics=wanted, progress=not no_progress)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{method} on {model_name}: {len(requests)} cases of {data}, mode {run.mode}"
                   f" (hparams: {hparams or 'method defaults'})")
        click.echo(describe_run(unedited, title="-- unedited model --"))
        click.echo(describe_run(run.report, title=f"-- after editing with {method} --"))
        if run.failures:
            click.echo(f"{len(run.failures)} edits failed (left out): {run.failures[0]['error']}")
        click.echo(f"model restored bit for bit after the run: {'yes' if run.restored else 'NO'}")
        if out:
            write_json(out, {"model": model_name, "data": str(data),
                             "hparams_source": str(hparams) if hparams else None,
                             "unedited": unedited.to_dict(), "run": run.to_dict()})
            click.echo(f"wrote {out}")
