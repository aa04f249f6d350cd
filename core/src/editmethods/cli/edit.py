"""``editmethods edit``: one edit on a model, with the answers before and after."""

from __future__ import annotations

import click

from editmethods.cli._common import check_writable, model_options


def register(cli: click.Group) -> None:
    @cli.command(name="edit")
    @click.option("--model", "model_name", required=True,
                  help="Model alias (see `editmethods models`), local path or hub id.")
    @click.option("--method", required=True, help="An installed method (see `editmethods plugins`).")
    @click.option("--hparams", default=None, help="Hyper-parameter file (YAML/JSON); default: the method package's file for "
                       "this model alias (hparams/<alias>.yaml), else the method's defaults.")
    @click.option("--prompt", required=True, help="Text the new target should follow.")
    @click.option("--subject", required=True, help="The entity in the prompt the fact is about.")
    @click.option("--target", required=True, help="The new answer.")
    @click.option("--save", "save_to", default=None, type=click.Path(),
                  help="Write the edit to this folder (safetensors + JSON).")
    @model_options
    def edit_command(model_name, method, hparams, prompt, subject, target, save_to, device, dtype,
                     gguf_file) -> None:
        """Edit one fact and print the model's answer before and after."""
        from editmethods import EditmethodsError, Editor, EditRequest
        from editmethods.evaluation.benchmarking import reference_hparams
        from editmethods.plugins import get_plugins
        from editmethods.request_checks import check_fits

        try:
            # Everything that can be checked without the model is checked before it loads.
            req = EditRequest(prompt=prompt, subject=subject, target_new=target)
            get_plugins().method(method)
            if save_to:
                check_writable(save_to, option="--save", folder=True)
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file,
                                            dtype=dtype, device=device)
            check_fits(req, editor.model, editor.tokenizer)
            if hparams is None:
                # The same shipped file `eval` and `bench` pick for this model alias.
                hparams = reference_hparams(editor.plugins, method, model_name)
            click.echo(f"hparams: {hparams or 'method defaults'}", err=True)
            before = editor.answer(prompt)
            handle = editor.edit(req, method, hparams)
            after = editor.answer(prompt)
            click.echo(f"prompt: {prompt}")
            click.echo(f"before: {prompt}{before}")
            click.echo(f"after:  {prompt}{after}")
            click.echo(editor.evaluate([req]).format())
            click.echo(f"edit {handle.edit_id} by {method} in {handle.seconds:.2f} s")
            if save_to:
                editor.save_edit(handle, save_to)
                click.echo(f"saved to {save_to}")
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
