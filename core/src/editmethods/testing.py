"""The conformance kit: checks every method package runs on itself. Needs pytest
(``pip install 'editmethods[testing]'``).

Subclass :class:`MethodConformance` in a test module of your package::

    from editmethods.testing import MethodConformance
    import my_package.plugin

    class TestMyMethod(MethodConformance):
        method = "mymethod"
        plugin = my_package.plugin
        hparams = {"layers": [0], "lr": 0.1}

What is checked follows from the method's registered :class:`~editmethods.types.MethodSpec`,
not from flags: every model type it declares (``model_types``; ``("*",)`` is every type in
:data:`~editmethods.tiny.TINY_MODEL_TYPES`) gets a tiny random model (no download); the
batch check runs when ``spec.batch``; a method that does not write weights
(``spec.writes_weights=False``) may attach hooks and submodules while its edit is live, and
must leave prompts outside the edit bit-identical unless the test class says otherwise
(:attr:`MethodConformance.unrelated_logits_exact`).

The checks, one test method each (a package skips one, on every model type or on one, with
:attr:`MethodConformance.skip_checks`, and a model type with
:attr:`MethodConformance.skip_model_types`, each with the reason the skip shows):

* an edit moves the target; unrelated prompts move less (or not at all);
* rollback restores weights and logits bit for bit; a second rollback is refused;
* two edits roll back in either order to the bit-exact model; a batch of two requests
  is one edit that rolls back exactly;
* commit: the committed edit cannot be rolled back and stays in the weights;
* no trace (``.grad``, ``requires_grad``, training flags, hooks, submodules) after an edit
  and after its rollback, from eval, train and mixed modes;
* a failing hook leaves the model untouched; bad requests and bad hparams are refused;
* a saved edit reloads on a fresh copy of the base with identical weights and logits, and
  is refused on a base whose touched tensors differ;
* the package's entry point (group ``editmethods``) is named as the method and registers
  it; the hparams files it ships are in the wheel built from its source tree.

Tiny random models prove mechanics, not quality: quality tests belong on a reference model.
The helpers that need no pytest live in :mod:`editmethods.tiny` and are re-exported here.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import shutil
import subprocess
import sys
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from editmethods.errors import MissingDependencyError

try:
    import pytest
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by core's tests
    raise MissingDependencyError(
        "editmethods.testing (the conformance kit) needs pytest: "
        "pip install 'editmethods[testing]'. The tiny models and helpers that need no pytest "
        "are in editmethods.tiny"
    ) from exc

import torch

from editmethods.architectures import get_parameter
from editmethods.editor import Editor
from editmethods.errors import EditmethodsError, HyperParamsError, RequestError, RollbackError
from editmethods.hookspecs import PROJECT, hookimpl
from editmethods.plugins import Plugins
from editmethods.scoring import model_config
from editmethods.tiny import (
    CORPUS,
    GLOBAL_HOOKS,
    MODULE_HOOKS,
    TINY_MODEL_TYPES,
    AddHParams,
    AddMethod,
    assert_no_trace,
    assert_same_state,
    logits_of,
    make_plugins,
    model_trace,
    state_copy,
    tiny_model,
    tiny_tokenizer,
    trace_differences,
    write_tiny_gguf,
)
from editmethods.types import EditHandle, EditRequest, MethodSpec

#: Flags the kit once read, and what replaced them (a subclass that still sets one fails at
#: import, instead of being silently ignored).
_RETIRED = {
    "writes_weights": "the kit reads writes_weights from the registered MethodSpec; to say "
                      "that unrelated prompts may move while the edit is live (a LoRA "
                      "adapter), set unrelated_logits_exact = False",
    "model_types": "the kit runs every model type the registered MethodSpec declares; to "
                   "leave one out, set skip_model_types = {'t5': 'why'}",
}


class _FailingApply:
    """A wrapper plugin that lets the method apply its edit, then raises."""

    @hookimpl(wrapper=True)
    def apply(self):
        yield
        raise RuntimeError("injected failure after apply")


# -- where a plugin comes from ------------------------------------------------------------
def plugin_module_name(plugin: Any) -> str:
    """The module an entry point would name for ``plugin`` (a module, or an object whose
    class is defined in that module)."""
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return type(plugin).__module__


def package_source(plugin: Any) -> Path | None:
    """The source tree (the folder holding ``pyproject.toml``) that ``plugin``'s top-level
    package is imported from, or ``None`` when it is not imported from one (installed
    from a wheel). Both the ``src/`` layout and the flat layout count."""
    top = plugin_module_name(plugin).split(".")[0]
    module = sys.modules.get(top) or importlib.import_module(top)
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    package_dir = Path(file).resolve().parent
    for root in (package_dir.parent.parent, package_dir.parent):
        if (root / "pyproject.toml").is_file() and package_dir.parent in (root, root / "src"):
            return root
    return None


def _pyproject(source: Path) -> dict[str, Any]:
    """``source/pyproject.toml``, parsed (:class:`ModuleNotFoundError` on Python 3.10
    without ``tomli``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ModuleNotFoundError("reading pyproject.toml on Python 3.10 needs tomli "
                                      "(pip install tomli)") from None
    return tomllib.loads((source / "pyproject.toml").read_text())


def _copy_ignore(root: Path) -> Any:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if Path(folder) == root:  # build outputs and what a wheel never holds
            skipped |= {n for n in names if n in {"build", "dist", "tests", ".git", ".venv"}}
        return skipped

    return ignore


def built_wheel_files(source: Path, workdir: Path) -> set[str]:
    """Build a wheel of the distribution in ``source`` and return the paths it holds.

    The source tree is copied into ``workdir`` first, so that the build writes no
    ``build/`` or ``*.egg-info`` into it; the wheel is built by the backend its
    ``pyproject.toml`` names (PEP 517), without build isolation: the backend must be
    installed here (raises :class:`ModuleNotFoundError` naming it otherwise).
    """
    system = _pyproject(source).get("build-system", {})
    backend = system.get("build-backend", "setuptools.build_meta:__legacy__")
    copy, out = workdir / "source", workdir / "wheel"
    shutil.copytree(source, copy, ignore=_copy_ignore(source))
    out.mkdir()
    code = (
        "import importlib, sys\n"
        "sys.path[:0] = sys.argv[3:]\n"
        "name, _, obj = sys.argv[1].partition(':')\n"
        "try:\n"
        "    backend = importlib.import_module(name)\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('NO BACKEND', exc.name); sys.exit(3)\n"
        "for part in filter(None, obj.split('.')):\n"
        "    backend = getattr(backend, part)\n"
        "print(backend.build_wheel(sys.argv[2]))\n"
    )
    paths = [str(copy / p) for p in system.get("backend-path", [])]
    done = subprocess.run([sys.executable, "-c", code, backend, str(out), *paths], cwd=copy,
                          capture_output=True, text=True, timeout=600)
    if done.returncode == 3 and "NO BACKEND" in done.stdout:
        raise ModuleNotFoundError(f"the build backend {backend!r} of {source} is not installed "
                                  "(pip install it, e.g. setuptools)")
    if done.returncode != 0:
        raise AssertionError(f"building a wheel of {source} failed:\n"
                             f"{(done.stdout + done.stderr)[-3000:]}")
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, f"the build of {source} left {len(wheels)} wheels in {out}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        return set(wheel.namelist())


# -- the kit --------------------------------------------------------------------------------
class MethodConformance:
    """Checks a method package must pass (see the module docstring)."""

    #: The method's registered name.
    method: ClassVar[str]
    #: The plugin object (module) that registers the method.
    plugin: ClassVar[Any]
    #: Hyper-parameters for tiny models (path, mapping or hparams object).
    hparams: ClassVar[Any] = None
    #: Model types the method declares but this test class does not run, each with the
    #: reason shown in the skip (e.g. ``{"t5": "this variant needs a decoder-only model"}``).
    skip_model_types: ClassVar[Mapping[str, str]] = {}
    #: Checks this test class skips, each with its reason: a check's name
    #: (``"test_commit_is_permanent"``) skips it on every model type, the name with a model
    #: type (``"test_apply_changes_prediction[gptj]"``) on that type only.
    skip_checks: ClassVar[Mapping[str, str]] = {}
    #: Whether prompts outside the edit keep bit-identical logits while it is live.
    #: ``None``: what the MethodSpec implies: a method that writes weights moves every prompt
    #: a little (they must move less than the edited one); one that attaches state
    #: (``writes_weights=False``) routes it to in-scope prompts only (IKE, SERAC). Set
    #: ``False`` for attached state that acts on every input (a LoRA adapter).
    unrelated_logits_exact: ClassVar[bool | None] = None

    unrelated_prompts: ClassVar[list[str]] = [
        "Miles Davis plays the", "Berlin is the capital of", "The Colosseum is in",
        "Toko Yasuda plays the", "Rome is a city in",
    ]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, instead in _RETIRED.items():
            if name in vars(cls):
                raise TypeError(f"{cls.__name__} sets {name}, which the conformance kit no "
                                f"longer reads: {instead}")
        for key in cls.skip_checks:
            check, _, rest = key.partition("[")
            if not check.startswith("test_") or not callable(getattr(cls, check, None)):
                raise TypeError(f"{cls.__name__}.skip_checks names {key!r}: no such check")
            if rest and rest.rstrip("]") not in TINY_MODEL_TYPES:
                raise TypeError(f"{cls.__name__}.skip_checks names {key!r}: the model type must "
                                f"be one of {', '.join(TINY_MODEL_TYPES)}")

    # -- what the method declares ---------------------------------------------------------
    def make_plugins(self) -> Plugins:
        plugins = Plugins(entry_points=False)
        plugins.register(self.plugin, name=self.method)
        return plugins

    def spec(self, editor: Editor | None = None) -> MethodSpec:
        """The method's registered spec (from ``editor``'s plugins when given)."""
        plugins = editor.plugins if editor is not None else self.make_plugins()
        return plugins.method(self.method).spec

    def model_type_skip(self, model_type: str) -> str | None:
        """Why ``model_type`` is not checked, or ``None`` when it is."""
        spec = self.spec()
        if not spec.supports(model_type):
            return (f"{self.method}'s MethodSpec does not declare {model_type} "
                    f"(model_types={spec.model_types})")
        if model_type in self.skip_model_types:
            return f"{model_type} left out by {type(self).__name__}: {self.skip_model_types[model_type]}"
        return None

    def expects_exact_unrelated(self, editor: Editor) -> bool:
        if self.unrelated_logits_exact is not None:
            return self.unrelated_logits_exact
        return not self.spec(editor).writes_weights

    def attaches(self, editor: Editor, handle: EditHandle) -> bool:
        """Whether the live edit may hook and add submodules: its method does not write
        weights, or this update carries no weight deltas."""
        return not self.spec(editor).writes_weights or not handle.update.deltas

    # -- fixtures -------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _skip_listed_checks(self, request: pytest.FixtureRequest) -> None:
        check = request.node.originalname
        callspec = getattr(request.node, "callspec", None)
        model_type = callspec.params.get("model_type") if callspec is not None else None
        for key in (check, f"{check}[{model_type}]"):
            if key in self.skip_checks:
                pytest.skip(f"{type(self).__name__} skips {key}: {self.skip_checks[key]}")

    @pytest.fixture(params=TINY_MODEL_TYPES)
    def model_type(self, request: pytest.FixtureRequest) -> str:
        reason = self.model_type_skip(request.param)
        if reason is not None:
            pytest.skip(reason)
        return request.param

    def make_editor(self, model_type: str) -> Editor:
        torch.manual_seed(0)
        return Editor(tiny_model(model_type), tiny_tokenizer(), plugins=self.make_plugins())

    @pytest.fixture
    def editor(self, model_type: str) -> Editor:
        return self.make_editor(model_type)

    def request(self) -> EditRequest:
        return EditRequest(prompt="The capital of France is", subject="France", target_new="Rome",
                           ground_truth="Paris", rephrase_prompts=["The capital of France is"])

    def second_request(self) -> EditRequest:
        """Another fact, for the sequential and batch checks."""
        return EditRequest(prompt="Miles Davis plays the", subject="Miles Davis",
                           target_new="piano", ground_truth="trumpet")

    def _target_logprob(self, editor: Editor, req: EditRequest) -> float:
        from editmethods.scoring import score_targets

        s = score_targets(editor.model, editor.tokenizer, [req.prompt], [req.target_text])
        return float(s.logprobs[0].sum())

    def _prompts(self) -> list[str]:
        return [self.request().prompt, self.second_request().prompt] + self.unrelated_prompts

    def _assert_restored(self, editor: Editor, state: Mapping[str, torch.Tensor],
                         logits: list[torch.Tensor], trace: Mapping[str, Any], when: str) -> None:
        assert_same_state(editor.model, state)
        for prompt, a, b in zip(self._prompts(), logits, logits_of(editor, self._prompts())):
            assert torch.equal(a, b), f"{when}, the logits of {prompt!r} differ from before"
        assert_no_trace(editor.model, trace, when)
        assert editor.edits == [], f"{when}, edits are still live: {editor.edits}"

    # -- checks: editing ------------------------------------------------------------------
    def test_declared_model_types_have_tiny_models(self) -> None:
        """Every model type the MethodSpec declares is one the kit builds."""
        unknown = [t for t in self.spec().model_types if t != "*" and t not in TINY_MODEL_TYPES]
        if unknown:
            pytest.skip(f"{self.method} declares {', '.join(unknown)}: the kit has no tiny model "
                        f"of them (it builds {', '.join(TINY_MODEL_TYPES)}), so they are not checked")

    def test_apply_changes_prediction(self, editor: Editor) -> None:
        req = self.request()
        before = self._target_logprob(editor, req)
        editor.edit(req, self.method, self.hparams)
        after = self._target_logprob(editor, req)
        assert after > before + 0.5, f"target log-prob barely moved: {before:.3f} -> {after:.3f}"

    def test_unrelated_prompts_move_less_than_the_edited_one(self, editor: Editor) -> None:
        prompts = [self.request().prompt] + self.unrelated_prompts
        before = logits_of(editor, prompts)
        editor.edit(self.request(), self.method, self.hparams)
        after = logits_of(editor, prompts)
        moved = [float((a - b).abs().mean()) for a, b in zip(after, before)]
        if self.expects_exact_unrelated(editor):
            changed = [p for p, m in zip(self.unrelated_prompts, moved[1:]) if m != 0.0]
            assert not changed, (f"unrelated prompts changed: {changed} (a method whose "
                                 "attached state acts on every input sets "
                                 "unrelated_logits_exact = False)")
        elif not model_config(editor.model).is_encoder_decoder:
            # (on a random encoder-decoder, decoder weights move every prompt alike)
            unrelated = sum(moved[1:]) / len(self.unrelated_prompts)
            assert unrelated < moved[0], f"unrelated prompts moved {unrelated:.4f} >= {moved[0]:.4f}"

    def _batch_edit(self, editor: Editor) -> EditHandle:
        if not self.spec(editor).batch:
            pytest.skip(f"{self.method}'s MethodSpec says batch=False")
        handle = editor.edit([self.request(), self.second_request()], self.method, self.hparams)
        assert isinstance(handle, EditHandle), "a batch edit returned more than one handle"
        assert handle.requests == (self.request(), self.second_request())
        return handle

    def test_batch_of_two_moves_both_targets(self, editor: Editor) -> None:
        """With ``spec.batch``: one call with two requests raises both targets' log-probs."""
        reqs = [self.request(), self.second_request()]
        before = [self._target_logprob(editor, r) for r in reqs]
        self._batch_edit(editor)
        after = [self._target_logprob(editor, r) for r in reqs]
        for r, b, a in zip(reqs, before, after):
            assert a > b, f"batch edit: the target of {r.prompt!r} did not move up ({b:.3f} -> {a:.3f})"

    def test_batch_of_two_rolls_back_exactly(self, editor: Editor) -> None:
        """With ``spec.batch``: the one edit of two requests rolls back to the bit-exact
        model (weights, logits, no trace)."""
        state, logits = state_copy(editor.model), logits_of(editor, self._prompts())
        trace = model_trace(editor.model)
        handle = self._batch_edit(editor)
        editor.rollback(handle)
        self._assert_restored(editor, state, logits, trace, "after the rollback of a batch edit")

    # -- checks: undo ---------------------------------------------------------------------
    def test_rollback_restores_weights_and_logits_exactly(self, editor: Editor) -> None:
        state, logits = state_copy(editor.model), logits_of(editor, self._prompts())
        trace = model_trace(editor.model)
        handle = editor.edit(self.request(), self.method, self.hparams)
        editor.rollback(handle)
        self._assert_restored(editor, state, logits, trace, f"after a {self.method} rollback")
        with pytest.raises(RollbackError):
            editor.rollback(handle)

    @pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
    def test_sequential_edits_roll_back_in_either_order(self, editor: Editor, order: str) -> None:
        """Two edits, the second made on the model the first left; rolled back in either
        order, the model is bit-exact again (weights, logits, no trace)."""
        state, logits = state_copy(editor.model), logits_of(editor, self._prompts())
        trace = model_trace(editor.model)
        first = editor.edit(self.request(), self.method, self.hparams)
        second = editor.edit(self.second_request(), self.method, self.hparams)
        assert editor.edits == [first, second]
        for handle in ([first, second] if order == "oldest-first" else [second, first]):
            editor.rollback(handle)
        self._assert_restored(editor, state, logits, trace,
                              f"after rolling back two {self.method} edits {order}")

    def test_commit_is_permanent(self, editor: Editor) -> None:
        """A committed edit is no longer live: its rollback is refused, ``rollback_all``
        leaves it, and the model answers as the live edit did (weights bit-identical for a
        method that writes weights; an attaching method may merge its state into them)."""
        handle = editor.edit(self.request(), self.method, self.hparams)
        edited_state, edited = state_copy(editor.model), logits_of(editor, self._prompts())
        editor.commit(handle)
        assert editor.edits == []
        with pytest.raises(RollbackError):
            editor.rollback(handle)
        editor.rollback_all()
        now = logits_of(editor, self._prompts())
        if self.spec(editor).writes_weights:
            assert_same_state(editor.model, edited_state)
            for prompt, a, b in zip(self._prompts(), edited, now):
                assert torch.equal(a, b), f"after the commit, the logits of {prompt!r} changed"
        else:
            # (merging attached state into the weights may round differently)
            for prompt, a, b in zip(self._prompts(), edited, now):
                gap = float((a - b).abs().max())
                assert torch.allclose(b, a, rtol=1e-4, atol=1e-4), (
                    f"after the commit, {prompt!r} no longer answers as the live edit did "
                    f"(logits differ by up to {gap:.2e})")

    @pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
    def test_edit_and_rollback_leave_no_trace(self, editor: Editor, mode: str) -> None:
        """No ``.grad`` on a parameter, no changed ``requires_grad``, no hook, no submodule
        and no changed training flag after an edit and after its rollback, from a model in
        eval mode and from one in train mode (a method that calls ``model.eval()`` and never
        restores the mode is caught), with one parameter frozen (a method that freezes every
        parameter and unfreezes them all is caught). A method that attaches its edit (it does
        not write weights, or its update carries no weight deltas: LoRA, IKE, SERAC) may add
        hooks and submodules while the edit is live; after the rollback they must be gone.

        In ``mixed`` mode every other module is in eval mode and the rest train (a method
        that restores the mode with ``model.train(flag)`` is caught: use
        :mod:`editmethods.modes`)."""
        model = editor.model
        model.train(mode != "eval")
        if mode == "mixed":
            for i, module in enumerate(model.modules()):
                if i % 2:
                    module.training = False
        next(iter(model.parameters())).requires_grad_(False)
        before = model_trace(model)
        handle = editor.edit(self.request(), self.method, self.hparams)
        assert_no_trace(model, before, f"after a {self.method} edit ({mode} mode)",
                        allow_attached=self.attaches(editor, handle))
        editor.rollback(handle)
        assert_no_trace(model, before, f"after the rollback of a {self.method} edit ({mode} mode)")

    # -- checks: failures and bad input ---------------------------------------------------
    def test_failing_hook_leaves_model_untouched(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        trace = model_trace(editor.model)
        logits = logits_of(editor, [self.request().prompt])
        failing = _FailingApply()
        editor.plugins.register(failing, name="failing-wrapper")
        try:
            with pytest.raises(EditmethodsError, match="injected failure"):
                editor.edit(self.request(), self.method, self.hparams)
        finally:
            editor.plugins.unregister(failing)
        assert_same_state(editor.model, state)
        assert torch.equal(logits[0], logits_of(editor, [self.request().prompt])[0])
        assert_no_trace(editor.model, trace, f"after a failed {self.method} edit")
        assert editor.edits == []

    def test_bad_requests_refused(self, editor: Editor) -> None:
        with pytest.raises(RequestError, match="does not occur"):
            EditRequest(prompt="The capital of France is", subject="Spain", target_new="Rome")
        with pytest.raises(RequestError, match="target_new is empty"):
            EditRequest(prompt="The capital of France is", subject="France", target_new=" ")
        with pytest.raises(RequestError):
            editor.edit([], self.method, self.hparams)

    def test_bad_hparams_refused(self, editor: Editor) -> None:
        state = state_copy(editor.model)
        with pytest.raises(HyperParamsError, match="extra fields found"):
            editor.edit(self.request(), self.method, {"no_such_key_xyz": 1})
        assert_same_state(editor.model, state)

    # -- checks: saved edits --------------------------------------------------------------
    def test_saved_edit_reproduces_the_edit_on_a_fresh_copy(self, editor: Editor,
                                                             tmp_path: Path) -> None:
        """``save_edit`` then ``load_edit`` on a fresh copy of the base model gives the same
        base weights, bit for bit, and the same logits; the loaded edit rolls back exactly."""
        model_type = model_config(editor.model).model_type
        # the base parameters, by the names they have before anything wraps their modules
        base_names = [name for name, _ in editor.model.named_parameters()]
        handle = editor.edit(self.request(), self.method, self.hparams)
        edited_base = {n: get_parameter(editor.model, n).detach().clone() for n in base_names}
        edited = logits_of(editor, self._prompts())
        editor.save_edit(handle, tmp_path / "edit")

        fresh = self.make_editor(model_type)
        state, logits = state_copy(fresh.model), logits_of(fresh, self._prompts())
        trace = model_trace(fresh.model)
        loaded = fresh.load_edit(tmp_path / "edit")
        assert (loaded.method, loaded.requests) == (handle.method, handle.requests)
        for name in base_names:
            assert torch.equal(get_parameter(fresh.model, name), edited_base[name]), (
                f"{name} differs from the edited model's after load_edit on a fresh copy")
        for prompt, a, b in zip(self._prompts(), edited, logits_of(fresh, self._prompts())):
            assert torch.equal(a, b), f"the loaded edit answers {prompt!r} differently"
        fresh.rollback(loaded)
        self._assert_restored(fresh, state, logits, trace, "after the rollback of a loaded edit")

    def test_saved_edit_refused_on_a_different_base(self, editor: Editor, tmp_path: Path) -> None:
        """A saved edit is refused on a base model whose tensors the edit touches (writes or
        reads) differ from the ones it was made on. Those tensors are perturbed on a fresh
        copy, not re-seeded: biases start at zero in every seed, so a re-seeded model has
        the same biases and a bias edit would not be told apart by its own tensors. An edit
        that touches no tensor is tied to the whole model: every parameter is perturbed."""
        model_type = model_config(editor.model).model_type
        handle = editor.edit(self.request(), self.method, self.hparams)
        editor.save_edit(handle, tmp_path / "edit")
        touched = list(dict.fromkeys(handle.update.params + handle.update.reads))

        other = self.make_editor(model_type)
        params = dict(other.model.named_parameters())
        perturbed = touched or list(params)
        with torch.no_grad():
            for name in perturbed:
                params[name].add_(1e-3)
        state = state_copy(other.model)
        with pytest.raises(EditmethodsError, match="different base model") as info:
            other.load_edit(tmp_path / "edit")
        if touched:
            assert any(repr(name) in str(info.value) for name in touched), (
                f"the refusal does not name a touched tensor ({touched}): {info.value}")
        assert_same_state(other.model, state)
        assert other.edits == []

    # -- checks: packaging ----------------------------------------------------------------
    def test_entry_point_names_the_method(self) -> None:
        """The package's ``pyproject.toml`` (when run from its source tree) and its installed
        metadata (when installed) declare an entry point in the ``editmethods`` group named
        as the method, whose module registers the method."""
        module = plugin_module_name(self.plugin)
        source = package_source(self.plugin)
        if source is not None:
            try:
                doc = _pyproject(source)
            except ModuleNotFoundError as exc:
                pytest.skip(str(exc))
            declared = doc.get("project", {}).get("entry-points", {}).get(PROJECT, {})
            names = [n for n, v in declared.items() if v.split(":")[0].strip() == module]
            fix = f'[project.entry-points.{PROJECT}] {self.method} = "{module}"'
            assert names, f"{source / 'pyproject.toml'} declares no entry point for {module}: add {fix}"
            assert self.method in names, (f"{source / 'pyproject.toml'} names the entry point of "
                                          f"{module} {names}, not {self.method!r}: {fix}")
        installed = [ep for ep in metadata.entry_points(group=PROJECT)
                     if ep.value.split(":")[0].strip() == module]
        if source is None and not installed:
            pytest.skip(f"{module} is neither installed (no entry point in group {PROJECT!r}) nor "
                        "imported from a source tree with a pyproject.toml")
        if installed:
            names = [ep.name for ep in installed]
            assert self.method in names, (
                f"the installed entry point of {module} is named {names}, not {self.method!r}"
                + (" (the installed metadata is stale: reinstall the package)" if source else ""))
            ep = installed[names.index(self.method)]
            plugin = ep.load()
        else:
            plugin = self.plugin
        plugins = Plugins(entry_points=False)
        plugins.register(plugin, name=self.method)
        assert self.method in plugins.methods, (
            f"registering {module} yields the methods {sorted(plugins.methods)}, not {self.method!r}")

    def test_wheel_ships_the_hparams_files(self, tmp_path: Path) -> None:
        """Every ``hparams/*.yaml`` under the package in the source tree is in the wheel
        built from it (a missing ``package-data`` entry ships a package without them)."""
        source = package_source(self.plugin)
        if source is None:
            pytest.skip(f"{plugin_module_name(self.plugin)} is not imported from a source tree")
        top = plugin_module_name(self.plugin).split(".")[0]
        package_dir = Path(str(importlib.import_module(top).__file__)).resolve().parent
        shipped = sorted(p.relative_to(package_dir.parent).as_posix()
                         for p in (package_dir / "hparams").rglob("*.yaml"))
        if not shipped:
            pytest.skip(f"{top} ships no hparams/*.yaml")
        try:
            files = built_wheel_files(source, tmp_path)
        except ModuleNotFoundError as exc:
            pytest.skip(str(exc))
        missing = [p for p in shipped if p not in files]
        assert not missing, (f"the wheel built from {source} lacks {missing}: add "
                             f'[tool.setuptools.package-data] {top} = ["hparams/*.yaml"]')


__all__ = [
    "CORPUS", "GLOBAL_HOOKS", "MODULE_HOOKS", "TINY_MODEL_TYPES", "AddHParams", "AddMethod",
    "MethodConformance", "assert_no_trace", "assert_same_state", "built_wheel_files",
    "logits_of", "make_plugins", "model_trace", "package_source", "plugin_module_name",
    "state_copy", "tiny_model", "tiny_tokenizer", "trace_differences", "write_tiny_gguf",
]
