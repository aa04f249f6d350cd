"""The plugin's hooks, registered in-process on a fresh plugin manager."""

import pytest

pytest.importorskip("editmethods")

import click  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import editmethods_testbed as tb  # noqa: E402
from editmethods.plugins import Plugins  # noqa: E402
from editmethods_testbed import plugin  # noqa: E402


def test_hook_register_models():
    plugins = Plugins(entry_points=False, builtins=False)
    plugins.register(plugin, name="testbed")
    try:
        aliases = plugins.model_aliases()
        assert str(aliases["testbed-gpt2"].path) == str(tb.MODELS_DIR / "gpt2")
        assert str(aliases["testbed-llama"].path) == str(tb.MODELS_DIR / "llama")
    finally:
        plugins.unregister(plugin)


def test_hook_register_commands():
    cli = click.Group("editmethods")
    plugin.register_commands(cli=cli)
    assert "build-testbed" in cli.commands
    result = CliRunner().invoke(cli, ["build-testbed", "--help"])
    assert result.exit_code == 0
    for option in ("--subjects", "--out", "--arch", "--seed"):
        assert option in result.output
