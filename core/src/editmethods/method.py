"""Writing a method as one class: :class:`Method`.

A method package implements the lifecycle hooks either as module-level ``@hookimpl``
functions (see :mod:`editmethods.hookspecs`), or, with less to write, as a subclass of
:class:`Method` that sets ``spec`` and defines only the lifecycle steps it needs::

    from editmethods import Location, Method, MethodSpec

    class Foo(Method):
        spec = MethodSpec(name="foo", hparams_class=FooHyperParams,
                          description="What it does", batch=True)

        def locate(self, model, hparams, architecture):
            return Location(layers=(hparams.layer,))

        def compute_update(self, model, tokenizer, requests, hparams, location):
            ...  # return an Update

The steps are ``locate``, ``compute_update`` (required), ``apply``, ``rollback`` and
``commit``; each takes, by name, any subset of its hook's arguments (``method`` included),
exactly as a ``@hookimpl`` function does, and returns what the hook returns. A weight-writing
method needs only ``compute_update`` (and ``locate`` if it chooses where to edit): the core
writes, undoes, commits and saves its deltas. A method that attaches state also defines
``apply``, ``rollback`` and ``commit``. A module-level function with the hook's argument
names can serve as a step directly: ``compute_update = staticmethod(compute_foo_update)``.

The entry point names the module, as for ``@hookimpl`` functions
(``[project.entry-points.editmethods] foo = "editmethods_foo.plugin"``): registering a module
registers every concrete :class:`Method` subclass defined in it, instantiated with no
arguments, next to the module's own ``@hookimpl`` functions (a ``register_commands``, say).
The entry point (or :meth:`Plugins.register <editmethods.plugins.Plugins.register>`) may also
name a class or a configured instance. The core turns each instance into a pluggy plugin
(:func:`as_plugin`): ``register_methods`` registers ``spec``, and each step answers only
calls for ``spec.name``, so with two methods installed neither ever answers the other's calls.

A shared base class for several methods is declared ``class Base(Method, abstract=True)``:
it needs no ``spec`` and is never registered itself. Mistakes are refused when the class is
defined, all at once, with a :class:`~editmethods.errors.MethodError` that names the fix: no
``spec`` or one that is not a :class:`~editmethods.types.MethodSpec`; a public method that is
not a lifecycle step (``compute_updates``: helpers start with ``_``); a parameter that the
step's hook does not pass, or ``*args``/``**kwargs``; no ``compute_update``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from editmethods import hookspecs
from editmethods.errors import MethodError
from editmethods.hookspecs import hookimpl
from editmethods.types import MethodSpec

#: The hooks a :class:`Method` implements as methods; each call is routed to the method's
#: owner (see :meth:`editmethods.plugins.Plugins.caller`).
LIFECYCLE_HOOKS = ("locate", "compute_update", "apply", "rollback", "commit")


class Method:
    """Base class of a method written as a class (see the module docstring).

    :cvar spec: what :func:`~editmethods.hookspecs.register_methods` registers; its ``name``
        is the only method name the steps answer for.
    """

    spec: ClassVar[MethodSpec]
    _editmethods_abstract: ClassVar[bool] = True

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Kept in the class's own namespace: a subclass of an abstract base is concrete.
        cls._editmethods_abstract = abstract
        problems = _class_problems(cls, abstract)
        if problems:
            raise MethodError(f"{_where(cls)}: " + "; ".join(problems))

    def __repr__(self) -> str:
        spec = getattr(self, "spec", None)
        return f"<{type(self).__qualname__} method {getattr(spec, 'name', '?')!r}>"


class MethodPlugin:
    """The pluggy plugin made from one :class:`Method` instance (see :func:`as_plugin`).

    It holds ``register_methods`` and one ``@hookimpl`` function per step the method
    defines. ``__file__`` is the file of the module that defines the method's class, where the
    core looks for the hyper-parameter files a package ships (``hparams/<model>.yaml``).
    """

    def __init__(self, method: Method) -> None:
        spec = getattr(method, "spec", None)
        if not isinstance(spec, MethodSpec):
            raise MethodError(f"{_where(type(method))}.spec: {_spec_fix(spec)}")
        #: The instance whose steps answer.
        self.method = method
        self.__file__ = getattr(sys.modules.get(type(method).__module__), "__file__", None)
        self.register_methods = hookimpl(_register_function(spec))
        for step in LIFECYCLE_HOOKS:
            function = getattr(method, step, None)
            if function is None:
                continue
            problems: list[str] = []
            names = _step_arguments(step, inspect.signature(function), problems)
            if problems:
                raise MethodError(f"{_where(type(method))}.{step}: " + "; ".join(problems))
            setattr(self, step, hookimpl(_hook_function(step, spec.name, function, names)))

    def __repr__(self) -> str:
        return f"<editmethods plugin for {self.method!r}>"


def as_plugin(method: Method | type[Method]) -> MethodPlugin:
    """The pluggy plugin for ``method`` (a class is instantiated with no arguments)."""
    if isinstance(method, type):
        cls = method
        if not issubclass(cls, Method):
            raise MethodError(f"{cls.__qualname__} is not a subclass of editmethods.Method")
        if cls.__dict__.get("_editmethods_abstract", False):
            raise MethodError(f"{_where(cls)} is declared abstract=True: register a "
                              "subclass of it that sets spec")
        try:
            method = cls()
        except Exception as exc:
            raise MethodError(
                f"{_where(cls)}() failed ({type(exc).__name__}: {exc}): the core creates "
                "method classes with no arguments; give __init__ defaults, or register a "
                "configured instance (an entry point may name one: 'pkg.plugin:instance')"
            ) from exc
    if not isinstance(method, Method):
        raise MethodError(f"{method!r} is not an editmethods.Method")
    return MethodPlugin(method)


def is_method(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`Method` subclass or instance (registered as a method)."""
    return isinstance(obj, Method) or (isinstance(obj, type) and issubclass(obj, Method))


def method_classes(module: ModuleType) -> list[type[Method]]:
    """The concrete :class:`Method` subclasses defined in ``module`` (not those it imports:
    a class registers once, from its own module), in definition order."""
    return [value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Method) and value is not Method
            and value.__module__ == module.__name__
            and not value.__dict__.get("_editmethods_abstract", False)]


# -- checks ---------------------------------------------------------------------------------
def _class_problems(cls: type, abstract: bool) -> list[str]:
    problems: list[str] = []
    for attr, value in vars(cls).items():
        if attr.startswith("_") or attr == "spec":
            continue
        if isinstance(value, (staticmethod, classmethod)):
            function, drops_first = value.__func__, isinstance(value, classmethod)
        elif inspect.isfunction(value):
            function, drops_first = value, True
        else:
            if attr in LIFECYCLE_HOOKS:
                problems.append(f"{attr} must be a method, not {type(value).__name__}")
            continue
        if attr not in LIFECYCLE_HOOKS:
            problems.append(_not_a_step(attr))
            continue
        params = list(inspect.signature(function).parameters.values())
        if drops_first:
            first = params[0].name if params else None
            if first is None or first in _hook_arguments(attr):
                problems.append(
                    f"{attr}({', '.join(p.name for p in params)}) takes no self: add self as "
                    "its first parameter, or, to use a module-level function as the step, "
                    f"write {attr} = staticmethod(function)")
                continue
            params = params[1:]
        _step_arguments(attr, inspect.Signature(params), problems)
    if abstract:
        return problems
    if "spec" not in vars(cls):
        problems.append(
            "sets no spec: add spec = MethodSpec(name=..., hparams_class=..., description=...) "
            "to the class body (every method class declares its own, so a subclass never "
            "registers its parent's name again); a base class shared by several methods is "
            f"declared class {cls.__name__}(Method, abstract=True)")
    elif not isinstance(vars(cls)["spec"], MethodSpec):
        problems.append(f"spec: {_spec_fix(vars(cls)['spec'])}")
    if not callable(getattr(cls, "compute_update", None)):
        problems.append("defines no compute_update: every method computes its update there "
                        "(def compute_update(self, model, tokenizer, requests, hparams): ...)")
    return problems


def _not_a_step(attr: str) -> str:
    if attr == "register_methods":
        return "register_methods is derived from spec: remove it (set spec instead)"
    if attr in _hook_names():
        return (f"{attr} is a hook, not a lifecycle step ({', '.join(LIFECYCLE_HOOKS)}): "
                "write it as a module-level @hookimpl function next to the class")
    close = difflib.get_close_matches(attr, LIFECYCLE_HOOKS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"{attr} is not a lifecycle step ({', '.join(LIFECYCLE_HOOKS)}){hint} "
            "(a helper's name starts with '_')")


def _step_arguments(step: str, signature: inspect.Signature, problems: list[str]) -> tuple[str, ...]:
    """The hook arguments a step asks for; what is wrong with its parameters into ``problems``."""
    allowed = _hook_arguments(step)
    names: list[str] = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            problems.append(f"{step} takes {'*' if p.kind is p.VAR_POSITIONAL else '**'}"
                            f"{p.name}: name the arguments it needs, from {', '.join(allowed)}")
        elif p.kind is p.POSITIONAL_ONLY:
            problems.append(f"{step}: parameter {p.name!r} is positional-only; arguments are "
                            "passed by name")
        elif p.name not in allowed:
            close = difflib.get_close_matches(p.name, allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{step} takes {p.name!r}, which the {step} hook does not pass"
                            f"{hint}; it passes {', '.join(allowed)}")
        else:
            names.append(p.name)
    return tuple(names)


def _spec_fix(value: Any) -> str:
    return (f"must be an editmethods.MethodSpec, got {type(value).__name__} {value!r}: write "
            "spec = MethodSpec(name=..., hparams_class=..., description=...)")


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def _hook_arguments(hook: str) -> tuple[str, ...]:
    return tuple(inspect.signature(getattr(hookspecs, hook)).parameters)


@functools.cache
def _hook_names() -> frozenset[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return frozenset(name for name, value in vars(hookspecs).items()
                     if callable(value) and hasattr(value, marker))


# -- binding --------------------------------------------------------------------------------
def _register_function(spec: MethodSpec) -> Callable[[Callable[[MethodSpec], None]], None]:
    def register_methods(register: Callable[[MethodSpec], None]) -> None:
        register(spec)

    return register_methods


def _hook_function(step: str, owner: str, function: Callable[..., Any],
                   names: tuple[str, ...]) -> Callable[..., Any]:
    """A function ``step(method, <names>)`` that calls ``function`` by name when ``method`` is
    ``owner``, and answers ``None`` (not mine: the next implementation answers) otherwise.

    pluggy reads which arguments to pass from the function's code object and passes them by
    position, so the function must really have these parameters: it is compiled from source
    (as :mod:`dataclasses` builds ``__init__``). The names are hook arguments, checked
    against the hook spec, so the source holds nothing but identifiers.
    """
    params = ("method",) + tuple(n for n in names if n != "method")
    assert step in LIFECYCLE_HOOKS and all(n.isidentifier() for n in params)
    source = (f"def {step}({', '.join(params)}):\n"
              "    if method != _owner:\n"
              "        return None\n"
              f"    return _function({', '.join(f'{n}={n}' for n in names)})\n")
    namespace: dict[str, Any] = {"_owner": owner, "_function": function,
                                 "__name__": getattr(function, "__module__", None) or __name__}
    exec(compile(source, f"<editmethods.Method {owner}.{step}>", "exec"), namespace)
    hook = namespace[step]
    hook.__doc__ = getattr(function, "__doc__", None)
    return hook


__all__ = ["LIFECYCLE_HOOKS", "Method", "MethodPlugin", "as_plugin", "is_method",
           "method_classes"]
