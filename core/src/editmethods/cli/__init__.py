"""The ``editmethods`` command line.

Core commands live in ``editmethods.cli.*`` modules, each adding itself to the group
with ``register(cli)``; plugins add theirs through the ``register_commands`` hook.

No command ends in a traceback: a bad option is a usage error (exit code 2), and every
other failure, of a core command or a plugin's, prints one line on stderr and exits with 1
(set ``EDITMETHODS_DEBUG=1`` to see the traceback of an unexpected error instead).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import click

from editmethods.cli._common import model_options
from editmethods.errors import EditmethodsError
from editmethods.plugins import Plugins, get_plugins

__all__ = ["CORE_COMMANDS", "DEBUG_ENV", "EditmethodsGroup", "build_cli", "echo_json", "main",
           "model_options", "one_line", "train_group"]

#: Set to a non-empty value to let unexpected errors end in their traceback.
DEBUG_ENV = "EDITMETHODS_DEBUG"

#: Modules of the core's own commands (each defines ``register(cli)``).
CORE_COMMANDS = (
    "editmethods.cli.plugins",
    "editmethods.cli.edit",
    "editmethods.cli.models",
    "editmethods.cli.eval",
    "editmethods.cli.bench",
    "editmethods.cli.demo",
    "editmethods.cli.trace",
    "editmethods.cli.stats",
)


def one_line(message: str) -> str:
    """``message`` on one line (the lines of a multi-line message joined by spaces)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


class EditmethodsGroup(click.Group):
    """The ``editmethods`` group: every error of a command below it ends as one line.

    An :class:`~editmethods.errors.EditmethodsError` (or a ``click.ClickException``) becomes
    ``Error: <message>`` on stderr and exit code 1; usage errors keep click's exit code 2;
    anything else is reported on one line as unexpected (a bug), unless :data:`DEBUG_ENV`
    is set.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
            raise
        except click.ClickException as exc:
            # Reworded in place, though click declares message Final: a new exception would
            # lose the class's exit code and formatting (FileError names its file).
            exc.message = one_line(exc.message)  # type: ignore[misc]
            raise
        except EditmethodsError as exc:
            raise click.ClickException(one_line(str(exc)) or type(exc).__name__) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(one_line(
                f"unexpected {type(exc).__name__}: {exc} (this is a bug in editmethods or a "
                f"plugin; please report it; set {DEBUG_ENV}=1 to see the traceback)")) from None


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

    @click.group(cls=EditmethodsGroup,
                 help="Knowledge editing of language models: edit one fact, measure it, "
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
