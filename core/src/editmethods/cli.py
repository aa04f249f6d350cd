"""The ``editmethods`` command line.

Core commands live in ``editmethods.commands.*`` modules, each adding itself to the group
with ``register(cli)``; plugins add theirs through the ``register_commands`` hook.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from editmethods.commands._common import model_options
from editmethods.plugins import Plugins, get_plugins

__all__ = ["CORE_COMMANDS", "build_cli", "echo_json", "main", "model_options", "train_group"]

#: Modules of the core's own commands (each defines ``register(cli)``).
CORE_COMMANDS = (
    "editmethods.commands.plugins",
    "editmethods.commands.edit",
    "editmethods.commands.models",
    "editmethods.commands.eval",
    "editmethods.commands.bench",
    "editmethods.commands.demo",
    "editmethods.commands.trace",
    "editmethods.commands.stats",
)


def train_group(cli: click.Group) -> click.Group:
    """The ``train`` group under which packages whose methods learn before they edit
    (MEND, SERAC, ...) add their trainers: ``editmethods train NAME``."""
    group = cli.commands.get("train")
    if group is None:
        group = click.Group(name="train", help="Train the networks that some methods need "
                                                "before they can edit.")
        cli.add_command(group)
    if not isinstance(group, click.Group):
        raise click.ClickException("a plugin registered `train` as a command, not a group")
    return group


def build_cli(plugins: Plugins | None = None) -> click.Group:
    """A fresh CLI group with the core's commands and every plugin's commands added."""

    @click.group(help="Knowledge editing of language models: edit one fact, measure it, "
                      "undo it exactly.")
    @click.version_option(package_name="editmethods")
    def cli() -> None:
        pass

    for module_name in CORE_COMMANDS:
        importlib.import_module(module_name).register(cli)
    (plugins if plugins is not None else get_plugins()).pm.hook.register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``editmethods`` script."""
    return build_cli().main(args=argv, prog_name="editmethods")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
