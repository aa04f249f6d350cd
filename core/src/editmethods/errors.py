"""Exceptions. Every message names the problem and how to fix it."""

from __future__ import annotations


class EditmethodsError(Exception):
    """Base class of every error this package raises on purpose."""


class RequestError(EditmethodsError, ValueError):
    """An edit request is malformed (empty target, subject not in prompt, ...)."""


class HyperParamsError(EditmethodsError, ValueError):
    """Hyper-parameters failed to load; the message lists every problem with its path."""


class ArchitectureError(EditmethodsError, KeyError):
    """The model's architecture is unknown, or a module path is not in the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MethodError(EditmethodsError, KeyError):
    """An unknown method, or a method registered twice."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EditError(EditmethodsError, RuntimeError):
    """An edit could not be computed or applied; the model was left unchanged."""


class RollbackError(EditmethodsError, RuntimeError):
    """A handle cannot be rolled back (other model, already rolled back)."""


class SavedEditError(EditmethodsError, RuntimeError):
    """A saved edit cannot be loaded or does not fit this model."""


class ModelLoadError(EditmethodsError, OSError):
    """A model cannot be loaded: a missing path or file, an unreadable or altered GGUF file,
    a bad ``dtype`` or ``device``, or a cache folder that cannot be written.

    An ``OSError`` too, so that code that caught transformers' ``OSError`` keeps working.
    """


class ArgumentError(EditmethodsError, ValueError):
    """An argument or option has a bad value: a count below its minimum, an unknown metric
    or kind, a path that cannot be written. The message names the argument and what it takes.
    """


class MissingDependencyError(EditmethodsError, ImportError):
    """An optional package that a feature needs is not installed; the message says what to
    install (``pip install 'editmethods[plots]'``)."""


class CollapseError(EditError):
    """An edit was refused because it broke the model as a whole (see
    :class:`editmethods.guard.Guard`): the message gives the figures and how to loosen or
    turn off the guard."""
