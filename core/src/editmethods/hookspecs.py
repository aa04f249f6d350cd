"""The plugin contract: every hook a method, metric or tool package can implement.

Plugins implement any subset of a hook's arguments (pluggy passes by name), so specs can
grow new arguments without breaking existing plugins. Lifecycle hooks (``locate``,
``compute_update``, ``apply``, ``rollback``) are called only on the plugin that registered
the method being run (see :mod:`editmethods.plugins`); ``evaluate`` is called on every
plugin, and each contributes its metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, MutableMapping, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click
    import torch

    from editmethods.architectures import Architecture
    from editmethods.hparams import HyperParams
    from editmethods.types import (
        Delta,
        EditHandle,
        EditRequest,
        EvalContext,
        Location,
        MethodSpec,
        MetricResult,
        ModelAlias,
        Update,
    )

PROJECT = "editmethods"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Declare the editing methods this package provides.

    :param register: call ``register(MethodSpec(...))`` once per method. The name must be
        lowercase and unique across installed packages.
    """


@hookspec
def register_architectures(register: Callable[[Architecture], None]) -> None:
    """Declare module paths for model architectures (keyed by ``config.model_type``).

    :param register: call ``register(Architecture(...))`` once per architecture.
    """


@hookspec
def register_models(register: Callable[[ModelAlias], None]) -> None:
    """Declare model aliases, so that ``--model NAME`` works wherever a path or hub id does.

    :param register: call ``register(ModelAlias(name=..., path=..., description=...))``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``editmethods`` command line.

    :param cli: the top-level click group; add commands with ``@cli.command()``.
    """


@hookspec(firstresult=True)
def locate(
    method: str,
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    hparams: HyperParams,
    architecture: Architecture,
) -> Location | None:
    """Decide where in the model the edit goes (layers, modules), without changing it.

    :param method: the method being run (one package may register several).
    :param model: the model to edit; must not be modified by this hook.
    :param tokenizer: its tokenizer.
    :param requests: the edits of this call (one, or a batch).
    :param hparams: the method's validated hyper-parameters.
    :param architecture: module paths of this model's architecture.
    :return: a :class:`~editmethods.types.Location`; ``None`` lets the core derive one
        from ``hparams`` (its ``layers`` and module template, when it has them).
    """


@hookspec(firstresult=True)
def compute_update(
    method: str,
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    hparams: HyperParams,
    location: Location,
    architecture: Architecture,
) -> Update:
    """Compute the change that realizes the edits, without applying it.

    The model must be left as it was (compute on copies, or use ``torch.func``); the core
    checks the returned update for NaN/inf before anything is written.

    :param method: the method being run.
    :param model: the model to edit.
    :param tokenizer: its tokenizer.
    :param requests: the edits of this call.
    :param hparams: the method's validated hyper-parameters.
    :param location: what :func:`locate` returned.
    :param architecture: module paths of this model's architecture.
    :return: an :class:`~editmethods.types.Update`: weight deltas (applied by the core) or a
        method-specific payload that the method's own :func:`apply` attaches.
    """


@hookspec(firstresult=True)
def apply(
    method: str,
    model: torch.nn.Module,
    tokenizer: Any,
    update: Update,
    handle: EditHandle,
) -> torch.nn.Module | None:
    """Make the update take effect.

    Weight deltas are written by the core's built-in implementation, which runs last; a
    method whose update is not a weight delta (an adapter, a memory, a prompt) implements
    this hook, attaches its state, and returns the module that now answers for the model
    (usually ``model`` itself).

    :param method: the method being run.
    :param model: the model to change.
    :param tokenizer: its tokenizer.
    :param update: what :func:`compute_update` returned (or a saved edit being re-applied).
    :param handle: the handle the edit will be known by; ``handle.edit_id`` names
        adapters or memory entries so that :func:`rollback` can find them.
    :return: the model; ``None`` to let the next implementation handle the update.
    """


@hookspec(firstresult=True)
def rollback(
    method: str,
    model: torch.nn.Module,
    handle: EditHandle,
) -> bool | None:
    """Undo exactly what :func:`apply` did for ``handle``.

    :param method: the method that made the edit.
    :param model: the edited model.
    :param handle: the edit to undo.
    :return: ``True`` when undone; ``None`` to let the next implementation handle it.
    """


@hookspec(firstresult=True)
def commit(
    method: str,
    model: torch.nn.Module,
    handle: EditHandle,
) -> bool | Sequence[Delta] | None:
    """Make an edit permanent: no rollback, of it or of any other edit, undoes it.

    Weight deltas need nothing from the method (the core marks them permanent). A method
    that attaches state either keeps it for good (return ``True``), or folds it into the
    weights (peft's ``merge_and_unload``) by returning the weight deltas of its merged form
    *without writing them*: the core then writes them (atomically, logged so that other
    edits stay exactly rollback-able) and calls this method's ``rollback`` hook to detach the
    state; if that fails, the writes are undone and the edit stays live.

    :param method: the method that made the edit.
    :param model: the edited model.
    :param handle: the edit to make permanent.
    :return: ``True`` when done, the deltas to write, or ``None`` to let the next
        implementation handle it.
    """


@hookspec
def remember_unedited(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    memory: MutableMapping[str, dict[str, Any]],
    generation: bool,
    batch_size: int,
) -> None:
    """Record, on the model before it is edited, what a metric will compare the edited model
    against. Called on every plugin by ``Editor.edit`` (before the update is applied) and by
    ``Editor.remember_unedited``; what is recorded reaches ``evaluate`` as
    ``context.unedited``. Record only what is not in ``memory`` yet: the same requests may
    come again.

    :param model: the model, not yet edited for ``requests`` (in eval mode, under no_grad).
    :param tokenizer: its tokenizer.
    :param requests: the requests about to be edited (or to be measured later).
    :param memory: the editor's record, by namespace: write under your own key
        (``memory.setdefault("my-metric", {})``).
    :param generation: also record what needs a generation per prompt; ``Editor.edit``
        passes ``False``, a benchmark run ``True`` once before editing.
    :param batch_size: token budget for batched scoring.
    """


@hookspec
def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    context: EvalContext,
) -> list[MetricResult] | None:
    """Measure the model on edit requests. Every metric plugin contributes its results.

    :param model: the (edited) model that answers.
    :param tokenizer: its tokenizer.
    :param requests: the edit requests to measure on.
    :param context: which metrics and protocols were asked for, and the pre-edit
        predictions that locality compares against.
    :return: a list of :class:`~editmethods.types.MetricResult`, or ``None``.
    """
