"""The ``Editor``: edit, evaluate, roll back, save and re-apply edits on one model.

>>> from editmethods import Editor, EditRequest                      # doctest: +SKIP
>>> editor = Editor.from_pretrained("testbed-gpt2")                  # doctest: +SKIP
>>> req = EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
>>> handle = editor.edit(req, method="ft", hparams="ft.yaml")         # doctest: +SKIP
>>> editor.evaluate([req])                                           # doctest: +SKIP
>>> editor.rollback(handle)                                          # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch

from editmethods.architectures import Architecture, get_module, get_parameter, resolve
from editmethods.errors import (
    EditError,
    EditmethodsError,
    RequestError,
    RollbackError,
    SavedEditError,
)
from editmethods.eval_report import EvalReport
from editmethods.fingerprint import tensor_hash
from editmethods.guard import Guard, Probe
from editmethods.hparams import HyperParams, load_hparams
from editmethods.ledger import Ledger
from editmethods.modes import restore_training_modes, training_modes
from editmethods.plugins import InstalledMethod, Plugins, get_plugins
from editmethods.request_checks import as_requests, check_fits, check_metrics, check_prompt
from editmethods.saving import read_edit, write_edit
from editmethods.scoring import greedy_continue, model_config
from editmethods.types import (
    Delta,
    EditHandle,
    EditRequest,
    EvalContext,
    Location,
    MetricResult,
    Update,
    new_edit_id,
)

HParamsSource = HyperParams | str | Path | Mapping[str, Any] | None

#: The key of a saved edit's base hashes that holds the whole model's fingerprint.
WHOLE_MODEL = "*"


class Editor:
    """Edits one model in place and keeps what is needed to undo each edit exactly.

    :param model: a transformers model (or any ``nn.Module`` with ``config.model_type``).
    :param tokenizer: its tokenizer.
    :param plugins: the plugin manager; the process-wide one by default.
    :param architecture: module paths, for an architecture the registry does not know.

    Thread safety: every call (edit, rollback, commit, load/save of an edit, evaluate,
    answer) holds a re-entrant lock of the *model*, so calls from several threads, or from
    several Editors sharing one model, run one at a time and never see a half-made edit.
    Using the model directly (a forward pass of your own) while another thread edits it is
    not protected: hold ``editor.ledger.lock`` around it.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        plugins: Plugins | None = None,
        architecture: Architecture | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.plugins = plugins if plugins is not None else get_plugins()
        self._architecture = architecture
        #: What metric plugins recorded on the unedited model (``remember_unedited`` hook),
        #: by the namespace each chose.
        self._unedited: dict[str, dict[str, Any]] = {}
        Ledger.of(model)  # notes the model's own parameters before anything attaches
        # The guard compares every edit with the model as it was before the first guarded
        # edit of this Editor, not with the previous edit: edit-by-edit comparison lets a
        # slow drift through (100 sequential ROME edits on testbed-gpt2: 84 kept, ending at
        # 10.7x the unedited perplexity; against the baseline 38 kept, ending at 1.42x).
        self._baselines: dict[Guard, Probe] = {}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        gguf_file: str | None = None,
        gguf_sha256: str | None = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        trust_remote_code: bool = False,
        plugins: Plugins | None = None,
        architecture: Architecture | None = None,
    ) -> Editor:
        """Load a model and tokenizer by alias (``testbed-gpt2``), local path or hub id.

        :param gguf_file: a GGUF checkpoint: its name in the folder or hub repo
            ``name_or_path``, or a path to it. Dequantized once and cached as safetensors
            under ``$EDITMETHODS_CACHE/models`` (see :mod:`editmethods.model_loading`).
        :param gguf_sha256: the GGUF file's expected sha256; any other file is refused.
        :param dtype: e.g. ``torch.float16`` or ``"bfloat16"``; the checkpoint's own by default.
        :param device: where to put the model (``"cuda"``, ``"cpu"``).
        :param trust_remote_code: run code shipped with the checkpoint; off unless you ask.
        :raises ModelLoadError: naming the file and the fix (missing path, bad dtype, ...).
        """
        from editmethods.model_loading import load_pretrained

        plugins = plugins if plugins is not None else get_plugins()
        alias = plugins.model_aliases().get(str(name_or_path))
        if alias is not None:
            name_or_path = alias.resolve_path()
            if gguf_file is None:  # the alias's own file, and the digest that file must have
                gguf_file, gguf_sha256 = alias.gguf_file, gguf_sha256 or alias.sha256
        loaded = load_pretrained(name_or_path, gguf_file=gguf_file, gguf_sha256=gguf_sha256,
                                 dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        return cls(loaded.model, loaded.tokenizer, plugins=plugins, architecture=architecture)

    # -- state --------------------------------------------------------------------------
    @property
    def architecture(self) -> Architecture:
        """Module paths of this model (by ``config.model_type``)."""
        if self._architecture is None:
            self._architecture = resolve(self.model, self.plugins.architectures())
        return self._architecture

    @property
    def ledger(self) -> Ledger:
        return Ledger.of(self.model)

    @property
    def edits(self) -> list[EditHandle]:
        """The live edits, oldest first."""
        return list(self.ledger.live.values())

    # -- editing ------------------------------------------------------------------------
    @overload
    def edit(self, requests: EditRequest | Sequence[EditRequest], method: str,
             hparams: HParamsSource = None, *, sequential: Literal[False] = False,
             guard: Guard | bool | None = None) -> EditHandle: ...

    @overload
    def edit(self, requests: EditRequest | Sequence[EditRequest], method: str,
             hparams: HParamsSource = None, *, sequential: Literal[True],
             guard: Guard | bool | None = None) -> list[EditHandle]: ...

    @overload
    def edit(self, requests: EditRequest | Sequence[EditRequest], method: str,
             hparams: HParamsSource = None, *, sequential: bool,
             guard: Guard | bool | None = None) -> EditHandle | list[EditHandle]: ...

    def edit(
        self,
        requests: EditRequest | Sequence[EditRequest],
        method: str,
        hparams: HParamsSource = None,
        *,
        sequential: bool = False,
        guard: Guard | bool | None = None,
    ) -> EditHandle | list[EditHandle]:
        """Edit the model in place and return the handle of the edit (one handle; with
        ``sequential=True`` a list, one handle per request).

        :param requests: one request, or many (one batch edit when the method supports
            batches; otherwise pass ``sequential=True``).
        :param method: an installed method's name (see ``editmethods plugins``).
        :param hparams: a YAML/JSON path, a mapping, the method's hparams object, or
            ``None`` for the method's defaults.
        :param sequential: edit the requests one after another, each on the model as the
            previous edits left it; returns one handle per request.
        :param guard: probe the model after each edit and refuse (roll back) an edit that
            breaks it as a whole compared with the model before this Editor's first guarded
            edit (:class:`~editmethods.guard.Guard`): ``True`` for the default guard, a
            ``Guard`` with your thresholds, ``False`` for none. By default (``None``) on when
            ``sequential``, off otherwise.
        :raises CollapseError: the guard refused an edit (with a sequence, every edit of it
            is rolled back).
        :raises EditmethodsError: on bad input or a failing plugin; the model is unchanged.
        """
        batch = as_requests(requests, argument="edit(requests=...)")
        active = _resolve_guard(guard, sequential)
        installed = self.plugins.method(method)
        hp = load_hparams(installed.spec.hparams_class, hparams, method=method)
        model_type = getattr(self.model.config, "model_type", "?")
        if not installed.spec.supports(model_type):
            raise EditError(
                f"method {method!r} does not support model type {model_type!r} "
                f"(it supports: {', '.join(installed.spec.model_types)})"
            )
        if len(batch) > 1 and not sequential and not installed.spec.batch:
            raise EditError(
                f"method {method!r} edits one fact at a time; got {len(batch)} requests. "
                "Pass sequential=True to edit them one after another"
            )
        check_fits(batch, self.model, self.tokenizer)
        with self.ledger.lock:
            if not sequential:
                return self._edit_once(installed, batch, hp, active)
            done: list[EditHandle] = []
            try:
                for r in batch:
                    done.append(self._edit_once(installed, [r], hp, active))
            except BaseException:
                for h in reversed(done):  # a sequence that fails half-way changes nothing
                    self.rollback(h)
                raise
            return done

    #: What a failing hook leaves behind, said in its error. True because every weight write
    #: is atomic and the editor undoes a half-made edit; what a method *attaches* (adapters,
    #: memories) the core cannot snapshot, so for those the message says what is known.
    _AFTER_FAILURE = {
        "locate": "the model was not changed",
        "compute_update": "the model was not changed",
        "apply": "the model was not changed",
    }
    _AFTER_FAILED_UNDO = {
        ("rollback", True): "the edit is still live and the weights are as they were before the "
                            "rollback (weight writes are atomic); the rollback can be retried",
        ("rollback", False): "the edit is still live, but the method may have removed part of "
                             "what it attached; retry the rollback, or reload the model",
        ("commit", True): "the edit is still live (not committed) and the weights are as they "
                          "were (weight writes are atomic)",
        ("commit", False): "the edit is still live (not committed), but the method may have "
                           "changed part of what it attached; roll it back, or reload the model",
    }

    def _after_failure(self, hook: str, handle: EditHandle | None) -> str:
        if hook in self._AFTER_FAILURE:
            return self._AFTER_FAILURE[hook]
        writes_weights = handle is not None and bool(handle.update.deltas)
        return self._AFTER_FAILED_UNDO.get((hook, writes_weights), "")

    def _call(self, installed: InstalledMethod, hook: str, **kwargs: Any) -> Any:
        caller = self.plugins.caller(installed.spec.name, hook)
        try:
            return caller(method=installed.spec.name, **kwargs)
        except EditmethodsError:
            raise
        except Exception as exc:
            raise EditError(
                f"method {installed.spec.name!r} (plugin {installed.plugin_name!r}) failed in "
                f"{hook}: {type(exc).__name__}: {exc}; "
                f"{self._after_failure(hook, kwargs.get('handle'))}"
            ) from exc

    def _edit_once(self, installed: InstalledMethod, batch: list[EditRequest], hp: HyperParams,
                   guard: Guard | None = None) -> EditHandle:
        start = time.perf_counter()
        arch = self.architecture
        common = dict(model=self.model, tokenizer=self.tokenizer, requests=tuple(batch),
                      hparams=hp, architecture=arch)
        location = self._call(installed, "locate", **common)
        if location is None:
            location = Location(layers=tuple(getattr(hp, "layers", ()) or ()))
        self._check_location(location)
        update = self._call(installed, "compute_update", location=location, **common)
        if not isinstance(update, Update):
            raise EditError(
                f"method {installed.spec.name!r} returned {type(update).__name__} from "
                "compute_update; it must return an Update"
            )
        self._check_update(update)
        self.remember_unedited(batch)
        if guard is not None and guard not in self._baselines:
            self._baselines[guard] = guard.probe(self.model, self.tokenizer)
        handle = self._apply(installed, update, hp, location, batch, start)
        if guard is not None:
            try:
                guard.check(self._baselines[guard], guard.probe(self.model, self.tokenizer))
            except BaseException:
                self.rollback(handle)
                raise
        return handle

    def _apply(self, installed: InstalledMethod, update: Update, hp: HyperParams,
               location: Location, batch: Sequence[EditRequest], start: float,
               base_hashes: Mapping[str, str] | None = None) -> EditHandle:
        ledger = self.ledger
        if base_hashes is None:
            base_hashes = self.base_hashes(update)
        # What the update writes, kept to undo a method's apply hook that fails half-way
        # (the core's own writes are atomic; this also covers a plugin's own writes).
        before = {name: get_parameter(self.model, name).detach().clone() for name in update.params}
        handle = EditHandle(
            edit_id=new_edit_id(), method=installed.spec.name, requests=tuple(batch), hparams=hp,
            location=location, update=update, session=ledger.session, base_hashes=dict(base_hashes),
        )
        try:
            result = self._call(installed, "apply", model=self.model, tokenizer=self.tokenizer,
                                update=update, handle=handle)
            if result is None:
                raise EditError(
                    f"no plugin applied the update of method {installed.spec.name!r}: it carries "
                    "no weight deltas and the method implements no apply hook"
                )
        except BaseException as exc:
            self._undo_failed_apply(installed, handle, before, exc)
            raise
        seconds = time.perf_counter() - start
        handle = _with_seconds(handle, seconds)
        ledger.add(handle)
        return handle

    def _undo_failed_apply(self, installed: InstalledMethod, handle: EditHandle,
                           before: Mapping[str, torch.Tensor], exc: BaseException) -> None:
        ledger = self.ledger
        if ledger.writes_of(handle.edit_id):  # the writes succeeded, something after failed
            ledger.unwrite(self.model, handle.edit_id)
        with torch.no_grad():
            for name, tensor in before.items():
                get_parameter(self.model, name).data.copy_(tensor)
        if not handle.update.deltas:  # let the method remove whatever it attached half-way
            try:
                self.plugins.caller(installed.spec.name, "rollback")(
                    method=installed.spec.name, model=self.model, handle=handle)
            except Exception as cleanup:
                raise EditError(
                    f"method {installed.spec.name!r} failed in apply ({type(exc).__name__}: "
                    f"{exc}) and then in removing what it had attached ({type(cleanup).__name__}: "
                    f"{cleanup}): the weights are as they were, but the method's attached state "
                    "may hold part of the edit; reload the model"
                ) from exc

    def base_hashes(self, update: Update) -> dict[str, str]:
        """What ties an edit to the model it was made on: the sha256 of every tensor the
        update writes or reads (so that a refusal can name the tensor), and the fingerprint
        of the whole model (under the key ``"*"``): every method computes its edit from the
        whole model, so a saved edit re-applies only to the model in the state it was made
        on (the same base, with the same earlier edits)."""
        hashed = update.params + tuple(p for p in update.reads if p not in update.params)
        hashes = {name: tensor_hash(get_parameter(self.model, name)) for name in hashed}
        hashes[WHOLE_MODEL] = self.ledger.fingerprint(self.model)
        return hashes

    def _check_location(self, location: Location) -> None:
        for layer in location.layers:
            self.architecture.check_layer(self.model, layer)
        for name in location.modules:
            get_module(self.model, name)

    def _check_update(self, update: Update) -> None:
        update.check_finite()
        for delta in update.deltas:
            param = get_parameter(self.model, delta.param)
            shape = tuple(delta.materialize().shape)
            if shape != tuple(param.shape):
                raise EditError(
                    f"{update.method}: delta for {delta.param!r} has shape {shape}, "
                    f"the parameter has {tuple(param.shape)}"
                )

    def remember_unedited(self, batch: Iterable[EditRequest], *, generation: bool = False,
                          batch_size: int = 32) -> None:
        """Let every metric plugin record, on the model as it is now, what it will compare the
        edited model against (its ``remember_unedited`` hook): e.g. the teacher-forced
        predictions on locality prompts. :meth:`edit` does this for the requests it edits;
        call it first when edits of other requests will come before the evaluation (sequential
        runs), so that locality is measured against the unedited model.

        ``generation=True`` also records what costs a generation per prompt (the ``wild``
        protocol's unedited continuations of neighbour prompts), which :meth:`edit` never
        does: call it on the unedited model before editing (the benchmark runner does).
        """
        batch = list(batch)
        if not batch:
            return
        batch = as_requests(batch, argument="remember_unedited(batch=...)")
        with self.ledger.lock:
            modes = training_modes(self.model)
            self.model.eval()
            try:
                with torch.no_grad():
                    self.plugins.pm.hook.remember_unedited(
                        model=self.model, tokenizer=self.tokenizer, requests=tuple(batch),
                        memory=self._unedited, generation=generation, batch_size=batch_size)
            finally:
                restore_training_modes(modes)

    # -- undo ---------------------------------------------------------------------------
    def rollback(self, handle: EditHandle | None = None) -> None:
        """Undo one edit (the last one by default), exactly.

        Each tensor the edit wrote becomes what it would be had the edit never been made:
        its original plus the other edits' deltas, replayed in order (bit for bit). A
        rollback that fails changes nothing: the edit stays live and can be rolled back again.

        :raises RollbackError: no such live edit (already rolled back, committed, or made on
            another model).
        """
        with self.ledger.lock:
            ledger = self.ledger
            if handle is None:
                if not ledger.live:
                    raise RollbackError("there is no edit to roll back")
                handle = list(ledger.live.values())[-1]
            self._check_handle(handle)
            installed = self.plugins.method(handle.method)
            done = self._call(installed, "rollback", model=self.model, handle=handle)
            if not done:
                raise RollbackError(
                    f"method {handle.method!r} could not roll back edit {handle.edit_id}; "
                    "it is still live"
                )
            ledger.remove(handle)

    def rollback_all(self) -> None:
        """Undo every live edit, newest first: the model is its original self again (with
        the committed edits, which are part of it now)."""
        with self.ledger.lock:
            for handle in reversed(self.edits):
                self.rollback(handle)

    def commit(self, handle: EditHandle) -> None:
        """Make an edit permanent: no rollback, of it or of any other edit, undoes it.

        A commit that fails changes nothing; the edit stays live.
        """
        with self.ledger.lock:
            self._check_handle(handle)
            installed = self.plugins.method(handle.method)
            result = self._call(installed, "commit", model=self.model, handle=handle)
            if result is None or result is False:
                raise EditError(f"method {handle.method!r} cannot commit edits; edit "
                                f"{handle.edit_id} is still live")
            if result is not True:
                self._commit_merged(installed, handle, result)
            self.ledger.remove(handle)

    def _commit_merged(self, installed: InstalledMethod, handle: EditHandle, deltas: Any) -> None:
        # The method handed back its edit's merged form: write it for good, then let the
        # method detach its state; a failure in either leaves everything as it was.
        deltas = tuple(deltas)
        if not all(isinstance(d, Delta) for d in deltas):
            raise EditError(f"method {handle.method!r}'s commit hook must return True or a "
                            "sequence of Delta objects")
        self._check_update(Update(method=handle.method, deltas=deltas))
        ledger = self.ledger
        names = list(dict.fromkeys(d.param for d in deltas))
        previous = {n: get_parameter(self.model, n).detach().clone() for n in names}
        kept = ({n: ledger.originals.get(n) for n in names},
                {n: list(ledger.log[n]) if n in ledger.log else None for n in names})
        try:
            ledger.write(self.model, handle.edit_id, deltas, committed=True)
        except Exception as exc:  # atomic: nothing was written
            raise EditError(
                f"committing edit {handle.edit_id} ({handle.method}) failed while writing its "
                f"merged weights: {type(exc).__name__}: {exc}; the edit is still live (not "
                "committed) and the weights are as they were (nothing was written)"
            ) from exc
        try:
            self._call(installed, "rollback", model=self.model, handle=handle)
        except BaseException:
            with torch.no_grad():
                for name, tensor in previous.items():
                    get_parameter(self.model, name).data.copy_(tensor)
            for name in names:
                original, log = kept[0][name], kept[1][name]
                if original is None:
                    ledger.originals.pop(name, None)
                else:
                    ledger.originals[name] = original
                if log is None:
                    ledger.log.pop(name, None)
                else:
                    ledger.log[name] = log
            raise

    def _check_handle(self, handle: EditHandle) -> None:
        ledger = self.ledger
        if not isinstance(handle, EditHandle):
            raise RollbackError(f"expected an EditHandle, got {type(handle).__name__}")
        if handle.session != ledger.session:
            raise RollbackError(
                f"edit {handle.edit_id} was made on another model (or another load of it): "
                "roll it back with the editor that made it"
            )
        if handle.edit_id not in ledger.live:
            raise RollbackError(f"edit {handle.edit_id} was already rolled back or committed")

    # -- measuring ----------------------------------------------------------------------
    def evaluate(
        self,
        requests: EditRequest | Sequence[EditRequest],
        *,
        metrics: Iterable[str] | None = None,
        batch_size: int = 32,
    ) -> EvalReport:
        """Measure the model as it is now on ``requests``; every metric plugin contributes.

        Locality compares with the predictions the model made before the edit of those
        requests (recorded by :meth:`edit`); locality pairs of requests that were never
        edited through this editor are not scored.
        """
        batch = as_requests(requests, argument="evaluate(requests=...)")
        metrics = check_metrics(metrics, self.plugins, argument="evaluate(metrics=...)")
        context = EvalContext(metrics=frozenset(metrics or ()), batch_size=batch_size,
                              unedited={k: dict(v) for k, v in self._unedited.items()})
        results: list[MetricResult] = []
        with self.ledger.lock:
            modes = training_modes(self.model)
            self.model.eval()
            try:
                for contributed in self.plugins.pm.hook.evaluate(
                    model=self.model, tokenizer=self.tokenizer, requests=tuple(batch),
                    context=context
                ):
                    results.extend(contributed or [])
            finally:
                restore_training_modes(modes)
        return EvalReport(tuple(results))

    def answer(self, prompt: str, *, max_new_tokens: int = 5) -> str:
        """The model's greedy continuation of ``prompt``."""
        check_prompt(prompt, argument="answer(prompt=...)")
        with self.ledger.lock:
            return greedy_continue(self.model, self.tokenizer, [prompt],
                                   max_new_tokens=max_new_tokens)[0]

    # -- saved edits --------------------------------------------------------------------
    def save_edit(self, handle: EditHandle, path: str | Path) -> Path:
        """Write a live edit to the folder ``path`` (safetensors + JSON)."""
        with self.ledger.lock:
            self._check_handle(handle)
            return write_edit(handle, path, model_type=model_config(self.model).model_type)

    def load_edit(self, path: str | Path) -> EditHandle:
        """Re-apply a saved edit to this model.

        Refused, before anything is written, when the files were altered, when the edit
        names a tensor its base hashes do not cover, or when any base tensor (for methods
        that attach state: the whole model) differs from the one the edit was made on.
        """
        with self.ledger.lock:
            saved = read_edit(path)
            installed = self.plugins.method(saved.method)
            hp = load_hparams(installed.spec.hparams_class, saved.hparams, method=saved.method)
            model_type = model_config(self.model).model_type
            if saved.model_type != model_type:
                raise SavedEditError(
                    f"{path}: edit made on a {saved.model_type!r} model, this one is {model_type!r}"
                )
            self._check_base(path, saved.update, saved.base_hashes)
            self._check_location(saved.location)
            self._check_update(saved.update)
            self.remember_unedited(saved.requests)
            return self._apply(installed, saved.update, hp, saved.location, saved.requests,
                               time.perf_counter(), base_hashes=saved.base_hashes)

    def _check_base(self, path: str | Path, update: Update, expected: Mapping[str, str]) -> None:
        covered = update.params + update.reads + (WHOLE_MODEL,)
        missing = [name for name in covered if name not in expected]
        if missing:
            raise SavedEditError(
                f"{path}: the edit writes or reads {', '.join(map(repr, missing))} but its "
                "base_hashes do not cover them (the file was altered): refused; save it again"
            )
        for name, digest in sorted(expected.items(), key=lambda kv: kv[0] == WHOLE_MODEL):
            if name == WHOLE_MODEL:
                found = self.ledger.fingerprint(self.model, cached=False)
                what = "the base model's fingerprint"
            else:
                try:
                    found = tensor_hash(get_parameter(self.model, name))
                except EditmethodsError:
                    raise SavedEditError(f"{path}: this model has no parameter {name!r}") from None
                what = repr(name)
            if found != digest:
                raise SavedEditError(
                    f"{path}: saved for a different base model: {what} has sha256 "
                    f"{found[:16]}…, the edit was made on {digest[:16]}…"
                )


def _resolve_guard(guard: Guard | bool | None, sequential: bool) -> Guard | None:
    if guard is None:
        return Guard() if sequential else None
    if isinstance(guard, bool):
        return Guard() if guard else None
    if not isinstance(guard, Guard):
        raise RequestError(f"edit(guard=...): got {type(guard).__name__}; pass True, False, None "
                           "or an editmethods.guard.Guard")
    return guard


def _with_seconds(handle: EditHandle, seconds: float) -> EditHandle:
    import attrs

    return attrs.evolve(handle, seconds=seconds)


def resolve_model_name(name_or_path: str | Path, plugins: Plugins) -> str:
    """A model alias's path, or ``name_or_path`` itself (a local path or a hub id)."""
    alias = plugins.model_aliases().get(str(name_or_path))
    return alias.resolve_path() if alias is not None else str(name_or_path)
