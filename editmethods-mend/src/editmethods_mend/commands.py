"""``editmethods train mend``: meta-train an editor for a model."""

from __future__ import annotations

import click

from editmethods.cli import model_options, train_group


def register(cli: click.Group) -> None:
    group = train_group(cli)

    @group.command(name="mend")
    @click.option("--model", "model_name", required=True,
                  help="Model alias (e.g. testbed-gpt2), local path or hub id.")
    @click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="Training edits: CounterFact (original or EasyEdit schema) or zsRE JSON.")
    @click.option("--val", "val_path", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Validation edits (same formats); default: 10% held out of --data.")
    @click.option("--out", "out", default=None, type=click.Path(file_okay=False),
                  help="Checkpoint folder to write; default ./mend-<model_type>-<hash>.")
    @click.option("--layers", default=None, help="Comma-separated layers to edit (default: last two).")
    @click.option("--steps", default=5000, show_default=True, help="Meta-steps at most.")
    @click.option("--minutes", default=14.0, show_default=True, help="Wall-clock budget.")
    @click.option("--rank", default=64, show_default=True, help="Rank of the editor's layers.")
    @click.option("--editor-lr", default=1e-4, show_default=True, help="Adam lr of the editor.")
    @click.option("--lr-lr", default=1e-4, show_default=True, help="Adam lr of the step sizes.")
    @click.option("--init-lr", default=1e-3, show_default=True, help="Initial step size.")
    @click.option("--batch-size", default=1, show_default=True, help="Edits per meta-step.")
    @click.option("--val-every", default=500, show_default=True, help="Steps between validations.")
    @click.option("--val-cases", default=60, show_default=True, help="Validation edits per validation.")
    @click.option("--patience", default=5, show_default=True, help="Validations without gain before stopping.")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--threads", default=1, show_default=True, help="torch threads.")
    @model_options
    def train_mend(model_name, data_path, val_path, out, layers, steps, minutes, rank, editor_lr,
                   lr_lr, init_lr, batch_size, val_every, val_cases, patience, seed, threads,
                   gguf_file, dtype, device) -> None:
        """Meta-train a MEND editor for MODEL and write it as safetensors + JSON."""
        import random
        from pathlib import Path

        import torch

        from editmethods import EditmethodsError, Editor
        from editmethods.scoring import model_config
        from editmethods_mend.checkpoint import model_hash
        from editmethods_mend.data import read_cases
        from editmethods_mend.train import TrainConfig, train_editor

        torch.set_num_threads(threads)
        try:
            layer_list = tuple(int(x) for x in layers.split(",")) if layers else ()
        except ValueError:
            raise click.BadParameter(f"--layers must be comma-separated integers, got {layers!r}") from None
        try:
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype,
                                            device=device)
            cases = read_cases(data_path)
            if val_path:
                val = read_cases(val_path)
            else:
                random.Random(seed).shuffle(cases)
                n_val = max(1, len(cases) // 10)
                val, cases = cases[:n_val], cases[n_val:]
            config = TrainConfig(layers=layer_list, rank=rank, init_lr=init_lr, editor_lr=editor_lr,
                                 lr_lr=lr_lr, steps=steps, batch_size=batch_size, val_every=val_every, val_cases=val_cases,
                                 patience=patience, max_minutes=minutes, seed=seed)
            folder = Path(out) if out else Path(
                f"mend-{model_config(editor.model).model_type}-{model_hash(editor.model)[:10]}")
            result = train_editor(editor.model, editor.tokenizer, editor.architecture, cases, val,
                                  folder, config, log=click.echo,
                                  extra={"model": str(model_name), "data": Path(data_path).name})
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from None
        best = ", ".join(f"{k} {v:.3f}" for k, v in result.best.items() if isinstance(v, float))
        click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; best validation: {best}")
        click.echo(f"editor written to {result.folder}")
