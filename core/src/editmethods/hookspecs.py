"""The plugin contract: every hook a method, metric or tool package can implement.

A method package is a Python package with an entry point in the ``editmethods`` group:

.. code-block:: toml

    [project.entry-points.editmethods]
    mymethod = "editmethods_mymethod.plugin"

A *method* is written as one subclass of :class:`editmethods.Method` in that module: it sets
``spec = MethodSpec(...)`` and defines only the lifecycle steps it needs (``locate``,
``compute_update`` (required), ``apply``, ``rollback``, ``commit``), each taking, by name, any
subset of its hook's arguments below and returning what the hook returns. The core registers
every concrete ``Method`` subclass the module defines, derives ``register_methods`` from
``spec`` and makes each step answer only for ``spec.name``; a missing or mistyped ``spec``, a
misspelled step or an argument the hook does not pass is refused when the class is defined
(see ``plugins/_template``). The other hooks (metrics, commands, architectures, model
aliases) are module-level functions marked ``@editmethods.hookimpl``.

An implementation may take any subset of a hook's arguments: pluggy passes them by name, so
specs can grow new arguments without breaking existing plugins. Lifecycle hooks
(``locate``, ``compute_update``, ``apply``, ``rollback``, ``commit``) are called only on the
plugin that registered the method being run (see :mod:`editmethods.plugins`), plus plugins
that register no method (cross-cutting wrappers with ``@hookimpl(wrapper=True)``, and the
core's weight writer, which runs last). ``remember_unedited`` and ``evaluate`` are called on
every plugin, so that each metric plugin records and reports its own metrics.

Plugins load from entry points; ``EDITMETHODS_LOAD_PLUGINS=rome,ft`` loads only those, and
``EDITMETHODS_LOAD_PLUGINS=`` (empty) loads none. A plugin that fails to import is reported by
name (``editmethods plugins`` lists it) and the others still load. A hook name the core does
not know is refused when the plugin is registered.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

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

    Each method is a :class:`~editmethods.types.MethodSpec`: ``name`` (lowercase, unique
    across installed packages), ``hparams_class`` (a frozen ``HyperParams`` subclass),
    ``description``, ``model_types`` (``config.model_type`` values, or ``("*",)``), ``batch``
    (whether one call may carry many requests) and ``writes_weights``.

    :param register: call ``register(MethodSpec(...))`` once per method.

    Example::

        @hookimpl
        def register_methods(register):
            register(MethodSpec(name="mymethod", hparams_class=MyHParams,
                                description="What it does", batch=True))
    """


@hookspec
def register_architectures(register: Callable[[Architecture], None]) -> None:
    """Declare module paths for model architectures (keyed by ``config.model_type``).

    An :class:`~editmethods.architectures.Architecture` gives templates (``{}`` = layer
    index) for ``layer``, ``attn``, ``mlp``, ``mlp_in``, ``mlp_out`` and the names of
    ``embed``, ``final_norm``, ``lm_head``.

    :param register: call ``register(Architecture(...))`` once per architecture.

    Example::

        @hookimpl
        def register_architectures(register):
            register(Architecture(model_type="phi", layer="model.layers.{}", ...))
    """


@hookspec
def register_models(register: Callable[[ModelAlias], None]) -> None:
    """Declare model aliases: short names for a model folder, hub id or GGUF file.

    An alias works wherever a path or hub id does (``Editor.from_pretrained``, every
    ``--model`` option). Its ``path`` is a folder, a hub id or a ``.gguf`` file. A GGUF-backed
    alias also names ``gguf_file`` (the file inside ``path``) and may give its ``sha256`` (any
    other file is refused); when the folder is only known at load time (a file shipped in an
    optional package), pass ``locate=FUNCTION`` instead of ``path``: it is called when the
    alias is loaded, never at registration, and raises ``ModelLoadError`` saying how to
    install what is missing.

    :param register: call ``register(ModelAlias(name=..., path=..., description=...))`` once
        per alias.

    Example::

        @hookimpl
        def register_models(register):
            register(ModelAlias(name="my-model", path=MODEL_DIR, description="..."))
            register(ModelAlias(name="my-gguf", locate=find_folder, gguf_file="my.Q4_1.gguf",
                                sha256="b179c9...", description="..."))
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``editmethods`` command line.

    :param cli: the top-level click group; add commands with ``@cli.command()``.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello")
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

    The core checks that every layer and module of the returned location exists.

    :param method: the method being run (one package may register several).
    :param model: the model to edit; must not be modified by this hook.
    :param tokenizer: its tokenizer.
    :param requests: the edits of this call (one, or a batch).
    :param hparams: the method's validated hyper-parameters.
    :param architecture: module paths of this model's architecture.
    :return: a :class:`~editmethods.types.Location` (layers, module names, info); ``None``
        lets the core derive one from ``hparams`` (its ``layers`` and module template, when
        it has them).

    Example::

        @hookimpl
        def locate(hparams):
            return Location(layers=hparams.layers)
    """


@hookspec(firstresult=True)
def compute_update(  # type: ignore[empty-body]  # a spec: pluggy calls the hookimpls, never this
    method: str,
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    hparams: HyperParams,
    location: Location,
    architecture: Architecture,
) -> Update:
    """Compute the change that realizes the edits, without applying it.

    The model must be left as it was (compute on copies, or through
    ``torch.func.functional_call``). Weight-writing methods return ``Update(deltas=...)``
    with one ``Delta`` per parameter, dense or as low-rank factors in the parameter's own
    layout; the core checks them for NaN/inf and shapes before anything is written, writes
    them, and undoes them exactly. Methods that keep the weights frozen return their state in
    ``Update.payload`` (tensors) and ``Update.meta`` (JSON) and list in ``Update.reads`` the
    weights they depend on.

    :param method: the method being run.
    :param model: the model to edit.
    :param tokenizer: its tokenizer.
    :param requests: the edits of this call.
    :param hparams: the method's validated hyper-parameters.
    :param location: what :func:`locate` returned.
    :param architecture: module paths of this model's architecture.
    :return: an :class:`~editmethods.types.Update`: weight deltas (applied by the core) or a
        method-specific payload that the method's own :func:`apply` attaches.

    Example::

        @hookimpl
        def compute_update(method, model, requests, location, architecture):
            name = architecture.path("mlp_out", location.layers[0]) + ".weight"
            return Update(method=method, deltas=(Delta(param=name, left=u, right=v),))
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

    Weight deltas need no implementation: the core's built-in ``apply`` runs last and writes
    them. A method whose update is not a weight delta (an adapter, a memory, a prompt)
    implements this hook, attaches its state to ``model`` under ``handle.edit_id``, and
    returns the module that now answers for the model (usually ``model`` itself). If
    ``apply`` raises, the core restores every tensor the update named and calls
    :func:`rollback` so that the method can remove what it attached half-way.

    :param method: the method being run.
    :param model: the model to change.
    :param tokenizer: its tokenizer.
    :param update: what :func:`compute_update` returned (or a saved edit being re-applied).
    :param handle: the handle the edit will be known by; ``handle.edit_id`` names
        adapters or memory entries so that :func:`rollback` can find them.
    :return: the model; ``None`` to let the next implementation handle the update.

    Example::

        @hookimpl
        def apply(model, update, handle):
            attach_memory(model, handle.edit_id, update.payload)
            return model
    """


@hookspec(firstresult=True)
def rollback(
    method: str,
    model: torch.nn.Module,
    handle: EditHandle,
) -> bool | None:
    """Undo exactly what :func:`apply` did for ``handle``, leaving other edits in place.

    Weight deltas are undone by the core: bit for bit when no other live edit touches the
    same tensors, by subtracting the delta otherwise.

    :param method: the method that made the edit.
    :param model: the edited model.
    :param handle: the edit to undo.
    :return: ``True`` when undone; ``None`` to let the next implementation handle it.

    Example::

        @hookimpl
        def rollback(model, handle):
            detach_memory(model, handle.edit_id)
            return True
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

    Example::

        @hookimpl
        def commit(model, handle):
            return adapter_as_deltas(model, handle.edit_id)
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
    """Record, on the unedited model, what a metric will compare the edited model against.

    Called on every plugin by ``Editor.edit``, before the update is applied (with
    ``generation=False``), and by ``Editor.remember_unedited(requests, generation=True)``,
    which also asks for what costs a generation per prompt (the benchmark runner calls it
    once before editing). Write under your own key of ``memory`` and record only what is not
    there yet (the same requests may come again); ``evaluate`` reads it back as
    ``context.unedited[key]``. The core's metrics work this way (the Editor knows no metric).

    :param model: the model, not yet edited for ``requests`` (in eval mode, under no_grad).
    :param tokenizer: its tokenizer.
    :param requests: the requests about to be edited (or to be measured later).
    :param memory: the editor's record, by namespace: write under your own key
        (``memory.setdefault("my_metric", {})``).
    :param generation: also record what needs a generation per prompt; ``Editor.edit``
        passes ``False``, a benchmark run ``True`` once before editing.
    :param batch_size: token budget for batched scoring.

    Example::

        @hookimpl
        def remember_unedited(model, tokenizer, requests, memory):
            known = memory.setdefault("my_metric", {})
            for r in requests:
                known.setdefault(r.prompt, my_score(model, tokenizer, r.prompt))
    """


@hookspec
def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[EditRequest],
    context: EvalContext,
) -> list[MetricResult] | None:
    """Measure the model on edit requests, as it answers now.

    Every metric plugin contributes a list of :class:`~editmethods.types.MetricResult`
    (name, value, protocol, n, per-case values). ``context.metrics`` names the metrics asked
    for (empty = all whose inputs are present; use ``context.wants(name)``);
    ``context.unedited`` holds what :func:`remember_unedited` recorded on the unedited model,
    by namespace (``"target"``: teacher-forced predictions on locality prompts by
    ``locality_key``; ``"wild"``: greedy continuations of neighbour prompts). Results of
    different protocols are reported side by side and never averaged together.

    :param model: the (edited) model that answers.
    :param tokenizer: its tokenizer.
    :param requests: the edit requests to measure on.
    :param context: which metrics and protocols were asked for, and what was recorded on the
        unedited model that locality compares against.
    :return: a list of :class:`~editmethods.types.MetricResult`, or ``None``.

    Example::

        @hookimpl
        def evaluate(model, tokenizer, requests, context):
            if context.wants("my_metric"):
                return [MetricResult(name="my_metric", value=..., protocol="mine",
                                     n=len(requests))]
    """
