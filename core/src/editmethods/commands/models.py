"""``editmethods models``: the model aliases plugins declare (``register_models``)."""

from __future__ import annotations

from pathlib import Path

import click

from editmethods.plugins import get_plugins


def register(cli: click.Group) -> None:
    @cli.command(name="models")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def models_command(as_json: bool) -> None:
        """List model aliases usable as --model (a path or hub id works too)."""
        from editmethods.cli import echo_json

        aliases = sorted(get_plugins().model_aliases().values(), key=lambda a: a.name)
        rows = [{"name": a.name, "path": str(a.path), "description": a.description,
                 "available": Path(a.path).exists() or not Path(str(a.path)).is_absolute()}
                for a in aliases]
        if as_json:
            echo_json(rows)
            return
        if not rows:
            click.echo("no model aliases (install editmethods-testbed for the reference models); "
                       "pass a local path or a hub id to --model")
            return
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            state = "" if r["available"] else "  [missing: not built yet]"
            click.echo(f"{r['name']:<{width}}  {r['description']}{state}\n{'':<{width}}  {r['path']}")
