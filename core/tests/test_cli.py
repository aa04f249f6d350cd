"""The command line: plugins listing, a real edit on a saved model, plugin commands."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from editmethods import hookimpl
from editmethods.cli import build_cli
from editmethods.plugins import ENV_VAR
from editmethods.testing import make_plugins, tiny_model, tiny_tokenizer


def test_hook_register_commands_adds_a_subcommand():
    class Hello:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")

    result = CliRunner().invoke(build_cli(make_plugins(Hello())), ["hello"])
    assert result.exit_code == 0 and "hello from a plugin" in result.output


def test_plugins_lists_installed_methods_as_table_and_json(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ft")
    from editmethods import plugins as plugins_module

    plugins_module.reset_plugins()
    try:
        table = CliRunner().invoke(build_cli(), ["plugins"])
        assert table.exit_code == 0 and "ft" in table.output and "editmethods-ft" in table.output
        data = json.loads(CliRunner().invoke(build_cli(), ["plugins", "--json"]).output)
        assert [m["method"] for m in data["methods"]] == ["ft"]
    finally:
        plugins_module.reset_plugins()


def test_edit_prints_answers_before_and_after(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "ft")
    from editmethods import plugins as plugins_module

    plugins_module.reset_plugins()
    model_dir = tmp_path / "tiny"
    tiny_model("gpt2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    try:
        result = CliRunner().invoke(build_cli(), [
            "edit", "--model", str(model_dir), "--method", "ft", "--prompt", "The capital of France is",
            "--subject", "France", "--target", "Rome", "--save", str(tmp_path / "edit"),
        ])
        assert result.exit_code == 0, result.output
        assert "before: The capital of France is" in result.output
        assert "reliability" in result.output and (tmp_path / "edit" / "edit.json").exists()
        bad = CliRunner().invoke(build_cli(), [
            "edit", "--model", str(model_dir), "--method", "nope", "--prompt", "The capital of France is",
            "--subject", "Spain", "--target", "Rome"])
        assert bad.exit_code != 0 and "does not occur in prompt" in bad.output
    finally:
        plugins_module.reset_plugins()
