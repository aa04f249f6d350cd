"""``editmethods stats``: compute (and cache) the second-moment statistics of MLP inputs.

Locate-then-edit methods compute these on first use; this command computes them ahead of
time, for the layers and corpus given, and can export them in ROME's ``.npz`` layout for
sharing (``mom2_dataset: npz:FOLDER`` reads them back).
"""

from __future__ import annotations

import click

from editmethods.cli._common import check_writable, model_options


def parse_layers(text: str) -> list[int]:
    """The layer indices of ``--layers`` (``"1,2,3"``): integers >= 0, at least one.

    :raises click.BadParameter: naming the option and what it takes.
    """
    parts = [x.strip() for x in text.split(",")]
    if not any(parts):
        raise click.BadParameter(f"no layer indices in {text!r}: give comma-separated "
                                 "integers, e.g. 1,2", param_hint="--layers")
    try:
        indices = [int(x) for x in parts if x]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, e.g. 1,2, got {text!r}",
                                 param_hint="--layers") from None
    negative = [i for i in indices if i < 0]
    if negative:
        raise click.BadParameter(f"layer indices count from 0, got {negative[0]}",
                                 param_hint="--layers")
    return list(dict.fromkeys(indices))


def register(cli: click.Group) -> None:
    @cli.command(name="stats")
    @click.option("--model", "model_name", required=True,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--layers", required=True,
                  help="Comma-separated layer indices; each layer's MLP output projection.")
    @click.option("--corpus", default="model-samples", show_default=True,
                  help="A text file, a folder of .txt, model-samples, wikipedia, wikitext, ...")
    @click.option("-n", "--n-samples", "n_samples", type=click.IntRange(min=1), default=1000,
                  show_default=True, help="Texts to use.")
    @click.option("--max-length", type=click.IntRange(min=1), default=256, show_default=True,
                  help="Tokens per text at most.")
    @click.option("--accumulate", "stats_dtype", type=click.Choice(["float32", "float64"]),
                  default="float64", show_default=True, help="Accumulation dtype.")
    @click.option("--export", "export_dir", type=click.Path(file_okay=False), default=None,
                  help="Also write each matrix to this folder in ROME's .npz layout.")
    @model_options
    def stats_command(model_name, layers, corpus, n_samples, max_length, stats_dtype,
                      export_dir, gguf_file, dtype, device) -> None:
        """Second moments E[k kᵀ] of the inputs of the layers' MLP output projections."""
        from editmethods import EditmethodsError, Editor
        from editmethods.toolkit.stats import second_moment
        from editmethods.toolkit.stats_import import export_second_moment

        indices = parse_layers(layers)
        try:
            if export_dir:
                check_writable(export_dir, option="--export", folder=True)
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype,
                                            device=device)
            for layer in indices:  # every layer is checked before any is computed
                editor.architecture.check_layer(editor.model, layer)
            for layer in indices:
                module = editor.architecture.path("mlp_out", layer)
                stats = second_moment(editor.model, editor.tokenizer, module, corpus,
                                      n_samples=n_samples, max_length=max_length,
                                      dtype=stats_dtype)
                where = "cache" if stats.from_cache else "computed"
                click.echo(f"{module}: {stats.dim}x{stats.dim} from {stats.n_samples} texts, "
                           f"{stats.n_tokens} tokens ({where}; key {stats.key[:16]}…)")
                if export_dir:
                    click.echo(f"  exported {export_second_moment(stats, export_dir)}")
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
