"""``editmethods plugins``: installed plugins, their methods, package and version."""

from __future__ import annotations

from typing import Any

import click

from editmethods.plugins import ENV_VAR, get_plugins


def register(cli: click.Group) -> None:
    @cli.command(name="plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @click.option("--all", "show_all", is_flag=True, help="Include the core's own plugins.")
    def plugins_command(as_json: bool, show_all: bool) -> None:
        """List installed methods and the packages that provide them."""
        from editmethods.cli import echo_json

        plugins = get_plugins()
        rows: list[dict[str, Any]] = [
            {"method": m.spec.name, "package": m.package, "version": m.version,
             "batch": m.spec.batch, "writes_weights": m.spec.writes_weights,
             "model_types": list(m.spec.model_types), "description": m.spec.description}
            for m in sorted(plugins.methods.values(), key=lambda m: m.spec.name)
        ]
        infos = plugins.plugin_infos() if show_all else []
        if as_json:
            echo_json({"methods": rows, "plugins": infos, "load_errors": plugins.load_errors})
            return
        if not rows:
            click.echo(f"no methods installed (pip install editmethods-rome, ...; {ENV_VAR} filters)")
        width = max([len(r["method"]) for r in rows] + [6])
        pwidth = max([len(str(r["package"])) for r in rows] + [7])
        if rows:
            click.echo(f"{'method':<{width}}  {'package':<{pwidth}}  {'version':<8}  description")
        for r in rows:
            click.echo(f"{r['method']:<{width}}  {str(r['package']):<{pwidth}}  "
                       f"{str(r['version']):<8}  {r['description']}")
        for info in infos:
            click.echo(f"plugin {info['name']} ({info['package']} {info['version']}): "
                       f"hooks {', '.join(info['hooks'])}")
        for name, error in plugins.load_errors.items():
            click.echo(f"failed to load plugin {name}: {error}", err=True)
