"""Every command that loads a model (one with ``--model``), from the core or any installed
package, takes the shared model options ``--gguf-file``, ``--dtype`` and ``--device``
(``editmethods.cli.model_options``)."""

from __future__ import annotations

import click
import pytest

from editmethods.cli import build_cli
from editmethods.plugins import ENV_VAR, Plugins

#: Commands not yet using ``model_options``, each with the reason.
PENDING: dict[str, str] = {}


def commands_with_model(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(commands_with_model(command, f"{prefix}{name} "))
        elif any("--model" in p.opts for p in command.params if isinstance(p, click.Option)):
            found[prefix + name] = command
    return found


def test_every_model_loading_command_takes_the_model_options(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    commands = commands_with_model(build_cli(Plugins()))  # every installed package, on purpose
    assert {"edit", "eval", "bench", "trace", "train mend", "train serac"} <= set(commands)
    missing = {}
    for name, command in commands.items():
        opts = {o for p in command.params for o in getattr(p, "opts", ())}
        lacking = {"--gguf-file", "--dtype", "--device"} - opts
        if lacking and name not in PENDING:
            missing[name] = sorted(lacking)
    assert missing == {}, f"commands without the shared model options: {missing}"


@pytest.mark.parametrize("name", sorted(PENDING))
def test_pending_commands_are_still_pending(name, monkeypatch):
    """Fails once a pending command has the options: then drop it from PENDING."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    command = commands_with_model(build_cli(Plugins()))[name]
    opts = {o for p in command.params for o in getattr(p, "opts", ())}
    assert not {"--gguf-file", "--dtype", "--device"} <= opts, f"{name} is done: remove it from PENDING"
