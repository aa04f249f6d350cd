"""``editmethods models``: the model aliases plugins declare (``register_models``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from editmethods.errors import ModelLoadError
from editmethods.plugins import get_plugins
from editmethods.types import ModelAlias


def describe(alias: ModelAlias) -> dict[str, Any]:
    """One row of the listing: name, path, GGUF file, and what is missing, if anything.

    Locating an alias only looks for files (it does not load or import the model's package).
    """
    row: dict[str, Any] = {"name": alias.name, "description": alias.description,
                           "gguf_file": alias.gguf_file, "path": None, "missing": None}
    try:
        path = alias.resolve_path()
    except ModelLoadError as exc:
        row["missing"] = str(exc)
        return row
    row["path"] = path
    local = Path(path)
    if local.is_absolute() and not local.exists():
        row["missing"] = "not built yet"
    elif alias.gguf_file and local.is_dir() and not (local / alias.gguf_file).is_file():
        row["missing"] = f"{alias.gguf_file} is not in {path}"
    return row


def register(cli: click.Group) -> None:
    @cli.command(name="models")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def models_command(as_json: bool) -> None:
        """List model aliases usable as --model (a path or hub id works too)."""
        from editmethods.cli import echo_json

        aliases = sorted(get_plugins().model_aliases().values(), key=lambda a: a.name)
        rows = [describe(a) for a in aliases]
        if as_json:
            echo_json([dict(r, available=r["missing"] is None) for r in rows])
            return
        if not rows:
            click.echo("no model aliases (install editmethods-testbed for the reference models); "
                       "pass a local path or a hub id to --model")
            return
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            state = f"  [missing: {r['missing']}]" if r["missing"] else ""
            where = r["path"] or ""
            if r["gguf_file"]:
                where = f"{where}/{r['gguf_file']}" if where else r["gguf_file"]
            click.echo(f"{r['name']:<{width}}  {r['description']}{state}\n{'':<{width}}  {where}")
