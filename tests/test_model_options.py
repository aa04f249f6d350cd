"""Every command that loads a model (one with ``--model``), from the core or any installed
package, takes the shared model options ``--gguf-file``, ``--dtype`` and ``--device``
(``editmethods.cli.model_options``)."""

from __future__ import annotations

import click

from editmethods.cli import build_cli
from editmethods.plugins import ENV_VAR, Plugins


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
    assert {"edit", "eval", "bench", "trace", "demo", "stats", "train mend",
            "train serac"} <= set(commands)
    missing = {}
    for name, command in commands.items():
        opts = {o for p in command.params for o in getattr(p, "opts", ())}
        lacking = {"--gguf-file", "--dtype", "--device"} - opts
        if lacking:
            missing[name] = sorted(lacking)
    assert missing == {}, f"commands without the shared model options: {missing}"


def test_edit_without_hparams_uses_the_shipped_file_for_the_alias_and_says_which(monkeypatch):
    """`edit` picks hparams as `eval` and `bench` do: the method package's file for the model
    alias (FT ships hparams/testbed-gpt2.yaml), named on stderr; no file means the defaults."""
    from click.testing import CliRunner

    from editmethods import plugins as plugins_module
    from editmethods.cli import build_cli
    from editmethods.plugins import ENV_VAR

    monkeypatch.setenv(ENV_VAR, "ft,testbed")
    plugins_module.reset_plugins()
    try:
        result = CliRunner().invoke(build_cli(), [
            "edit", "--model", "testbed-gpt2", "--method", "ft", "--prompt",
            "The capital of France is", "--subject", "France", "--target", "Rome"])
    finally:
        plugins_module.reset_plugins()
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("hparams: "))
    assert line.endswith("testbed-gpt2.yaml") and "editmethods_ft" in line
