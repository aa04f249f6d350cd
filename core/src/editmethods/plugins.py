"""Plugin discovery and the registries built from plugins.

Method packages are found through the entry-point group ``editmethods``. The environment
variable ``EDITMETHODS_LOAD_PLUGINS`` limits which ones load: a comma-separated list of
entry-point names; set but empty loads none (the recovery path when a plugin breaks).
The core's own plugins are registered exactly like third-party ones.

A lifecycle call for method X reaches only the plugin that registered X, plus plugins that
register no method at all (cross-cutting wrappers, the core's weight writer), so that with
ROME and MEMIT both installed the wrong one never answers.

A plugin is a module or an object with ``@hookimpl`` functions, or a method written as a
:class:`~editmethods.method.Method` subclass (or instance): registering a module also
registers the ``Method`` subclasses it defines, each as a plugin of its own under the
module's name (see :mod:`editmethods.method`).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import attrs
import pluggy

from editmethods import hookspecs
from editmethods.architectures import Architecture
from editmethods.builtin import BUILTIN_PLUGINS
from editmethods.errors import MethodError
from editmethods.hookspecs import PROJECT
from editmethods.method import LIFECYCLE_HOOKS, as_plugin, is_method, method_classes
from editmethods.types import MethodSpec, ModelAlias

ENV_VAR = "EDITMETHODS_LOAD_PLUGINS"


@attrs.frozen
class InstalledMethod:
    """A registered method and the plugin (and distribution) that provides it."""

    spec: MethodSpec
    plugin: Any
    plugin_name: str
    package: str | None
    version: str | None


class Plugins:
    """A plugin manager with the registries the core needs.

    :param entry_points: load plugins from the ``editmethods`` entry-point group
        (filtered by ``EDITMETHODS_LOAD_PLUGINS``). Tests pass ``False`` and register
        plugin objects themselves.
    :param builtins: register the core's own plugins.
    """

    def __init__(self, *, entry_points: bool = True, builtins: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: Plugins that failed to load: entry-point name -> error message.
        self.load_errors: dict[str, str] = {}
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        self._methods: dict[str, InstalledMethod] | None = None
        # What register() was given, by the name it was registered under, and the objects
        # that went into pluggy for it (the object itself and/or its Method plugins).
        self._groups: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        # pluggy's name of each of those objects -> the name register() used.
        self._group_of: dict[str, str] = {}
        if builtins:
            for module_name in BUILTIN_PLUGINS:
                self.register(importlib.import_module(module_name), name=module_name)
        if entry_points:
            self.load_entry_points()

    # -- registration -------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin: a module or an object with ``@hookimpl`` functions, or a
        :class:`~editmethods.method.Method` subclass or instance.

        A module's ``Method`` subclasses are registered with it (as ``NAME:METHOD``; their
        methods are reported under ``NAME``). Unknown hook names are rejected, so a misspelled
        hook fails loudly; a failure registers nothing.

        :return: the name the plugin is known by (``unregister`` takes the plugin itself).
        """
        if is_method(plugin):
            own, bound = None, [as_plugin(plugin)]
        else:
            own = plugin
            classes = method_classes(plugin) if isinstance(plugin, ModuleType) else []
            bound = [as_plugin(cls) for cls in classes]
        added: list[Any] = []
        try:
            if own is None:  # a Method on its own: known by its method's name by default
                first = bound.pop(0)
                name = name or first.method.spec.name
            else:
                first = own
            group = self.pm.register(first, name=name)
            if group is not None:  # None: a name blocked on pm, nothing registered
                added.append(first)
                for b in bound:
                    self.pm.register(b, name=f"{group}:{b.method.spec.name}")
                    added.append(b)
            self.pm.check_pending()
        except Exception:
            for obj in reversed(added):
                self.pm.unregister(obj)
            raise
        if group is None:
            return name or str(id(plugin))
        self._groups[group] = (plugin, tuple(added))
        for obj in added:
            self._group_of[self.pm.get_name(obj) or group] = group
        self._methods = None
        return group

    def unregister(self, plugin: Any) -> None:
        """Unregister what :meth:`register` registered for ``plugin`` (or a plugin object
        registered on :attr:`pm` directly)."""
        group = next((g for g, (original, _) in self._groups.items() if original is plugin), None)
        if group is None:
            self.pm.unregister(plugin)
        else:
            for obj in self._groups.pop(group)[1]:
                self._group_of.pop(self.pm.get_name(obj) or group, None)
                self.pm.unregister(obj)
        self._methods = None

    def load_entry_points(self, names: Iterable[str] | None = None) -> None:
        """Load plugins of the ``editmethods`` entry-point group.

        A plugin that fails to import is reported (a warning naming it, and
        :attr:`load_errors`) and does not take the others down.
        """
        allowed = names
        if allowed is None and ENV_VAR in os.environ:
            allowed = [n.strip() for n in os.environ[ENV_VAR].split(",") if n.strip()]
        for ep in metadata.entry_points(group=PROJECT):
            if allowed is not None and ep.name not in allowed:
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not break the others
                self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"editmethods plugin {ep.name!r} failed to load and was skipped: {exc} "
                    f"(set {ENV_VAR} to choose which plugins load)",
                    stacklevel=2,
                )
                continue
            dist = getattr(ep, "dist", None)
            self._dists[ep.name] = (
                (dist.metadata["Name"], dist.version) if dist is not None else (None, None)
            )

    # -- registries -----------------------------------------------------------------------
    @property
    def methods(self) -> dict[str, InstalledMethod]:
        """Every registered method by name."""
        if self._methods is None:
            found: dict[str, InstalledMethod] = {}
            for impl in self.pm.hook.register_methods.get_hookimpls():
                plugin = impl.plugin
                plugin_name = self._group_of.get(impl.plugin_name, impl.plugin_name)
                specs: list[MethodSpec] = []
                impl.function(*[specs.append for _ in impl.argnames])
                package, version = self._dists.get(plugin_name, (None, None))
                if package is None and plugin_name.startswith("editmethods."):
                    package, version = "editmethods", _version("editmethods")
                for spec in specs:
                    if not isinstance(spec, MethodSpec):
                        raise MethodError(
                            f"plugin {plugin_name!r} registered {spec!r}; register MethodSpec objects"
                        )
                    if spec.name in found:
                        raise MethodError(
                            f"method {spec.name!r} is registered twice: by "
                            f"{found[spec.name].plugin_name!r} and {plugin_name!r}; uninstall one "
                            f"or limit plugins with {ENV_VAR}"
                        )
                    found[spec.name] = InstalledMethod(spec, plugin, plugin_name, package, version)
            self._methods = found
        return self._methods

    def method(self, name: str) -> InstalledMethod:
        """The installed method ``name``; the error lists the installed ones."""
        methods = self.methods
        if name not in methods:
            installed = ", ".join(sorted(methods)) or "none"
            hint = ""
            if self.load_errors:
                hint = f"; plugins that failed to load: {', '.join(sorted(self.load_errors))}"
            raise MethodError(
                f"unknown method {name!r}; installed methods: {installed}{hint} "
                f"(install a package such as editmethods-{name})"
            )
        return methods[name]

    def architectures(self) -> dict[str, Architecture]:
        found: dict[str, Architecture] = {}
        self.pm.hook.register_architectures(register=lambda a: found.__setitem__(a.model_type, a))
        return found

    def model_aliases(self) -> dict[str, ModelAlias]:
        found: dict[str, ModelAlias] = {}
        self.pm.hook.register_models(register=lambda a: found.__setitem__(a.name, a))
        return found

    def caller(self, method: str, hook_name: str) -> Any:
        """The hook ``hook_name`` restricted to the plugin that owns ``method``.

        Plugins that register no method (wrappers, the core's weight writer) stay in.
        """
        owner = self.method(method).plugin
        others = {m.plugin for m in self.methods.values() if m.plugin is not owner}
        return self.pm.subset_hook_caller(hook_name, remove_plugins=list(others))

    def plugin_infos(self) -> list[dict[str, Any]]:
        """Name, hooks, package and version of every registered plugin (for ``plugins``)."""
        rows = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda x: x[0]):
            if self._group_of.get(name, name) != name:
                continue  # a module's Method plugin: shown in the module's row
            members = self._groups[name][1] if name in self._groups else (plugin,)
            hooks = sorted({h.name for m in members for h in self.pm.get_hookcallers(m) or []})
            package, version = self._dists.get(name, (None, None))
            if package is None and name.startswith("editmethods."):
                package, version = "editmethods", _version("editmethods")
            methods = sorted(m.spec.name for m in self.methods.values()
                             if any(m.plugin is member for member in members))
            rows.append({"name": name, "package": package, "version": version,
                         "hooks": hooks, "methods": methods})
        return rows


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


_default: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    global _default
    if _default is None:
        _default = Plugins()
    return _default


def reset_plugins() -> None:
    """Forget the process-wide plugin manager (the next :func:`get_plugins` reloads)."""
    global _default
    _default = None


__all__ = ["ENV_VAR", "LIFECYCLE_HOOKS", "InstalledMethod", "Plugins", "get_plugins",
           "reset_plugins"]
