"""Typed values that travel through the edit lifecycle (all frozen attrs classes)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import attrs

from editmethods.errors import EditError, RequestError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from editmethods.hparams import HyperParams


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _tuple_of_pairs(value: Any) -> tuple[PromptAnswer, ...]:
    if value is None:
        return ()
    out = []
    for item in value:
        if isinstance(item, PromptAnswer):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(PromptAnswer(**item))
        else:
            prompt, answer = item
            out.append(PromptAnswer(prompt=prompt, answer=answer))
    return tuple(out)


@attrs.frozen
class PromptAnswer:
    """A prompt and the answer expected from it (locality, portability)."""

    prompt: str
    answer: str
    #: What the pair measures, e.g. ``"neighborhood"`` or ``"relation_specificity"``.
    kind: str = ""


@attrs.frozen
class EditRequest:
    """One fact to write: ``prompt`` (containing ``subject``) should continue with ``target_new``.

    >>> EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
    EditRequest(prompt='The capital of France is', subject='France', target_new='Rome', ground_truth=None, rephrase_prompts=(), locality=(), portability=(), case_id=None, generation_prompts=())

    The target is continued after a space (``" Rome"``), so prompts must not end with one.
    """

    prompt: str
    subject: str
    target_new: str
    ground_truth: str | None = None
    rephrase_prompts: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    locality: tuple[PromptAnswer, ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    portability: tuple[PromptAnswer, ...] = attrs.field(default=(), converter=_tuple_of_pairs)
    case_id: str | int | None = None
    #: Prompts to generate free text from after the edit (fluency, CounterFact's
    #: ``generation_prompts``); never edited on.
    generation_prompts: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)

    def __attrs_post_init__(self) -> None:
        problems = []
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            problems.append("prompt is empty: give the text the target should follow")
        if not isinstance(self.target_new, str) or not self.target_new.strip():
            problems.append("target_new is empty: give the new answer, e.g. 'Rome'")
        if not isinstance(self.subject, str) or not self.subject.strip():
            problems.append("subject is empty: give the entity the fact is about")
        elif isinstance(self.prompt, str) and self.subject not in self.prompt:
            problems.append(
                f"subject {self.subject!r} does not occur in prompt {self.prompt!r}: "
                "the subject must appear verbatim in the prompt"
            )
        if isinstance(self.prompt, str) and self.prompt != self.prompt.rstrip():
            problems.append(
                "prompt ends with whitespace: the target is continued after a space, "
                "so remove the trailing space"
            )
        if problems:
            where = f"edit request {self.case_id!r}" if self.case_id is not None else "edit request"
            raise RequestError(f"{where}: " + "; ".join(problems))

    @property
    def target_text(self) -> str:
        """The continuation that the model should produce after ``prompt``."""
        return " " + self.target_new.strip()


@attrs.frozen
class MethodSpec:
    """What a package declares about one method (see ``register_methods``)."""

    name: str
    hparams_class: type
    description: str
    #: ``config.model_type`` values the method supports; ``("*",)`` for any.
    model_types: tuple[str, ...] = ("*",)
    #: Whether one call can take many requests at once (otherwise the editor edits
    #: them one after another only when asked with ``sequential=True``).
    batch: bool = False
    #: Whether the method writes model weights (otherwise it attaches state).
    writes_weights: bool = True

    def __attrs_post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"method name {self.name!r} must be lowercase letters, digits, '-' or '_'"
            )

    def supports(self, model_type: str) -> bool:
        return "*" in self.model_types or model_type in self.model_types


def _check_sha256(instance: Any, attribute: Any, value: str | None) -> None:
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
        raise ValueError(f"{attribute.name} must be 64 lowercase hex digits, got {value!r}")


@attrs.frozen
class ModelAlias:
    """A short name for a model: a local folder, a hub id, or a GGUF file in either (see
    ``register_models``).

    >>> ModelAlias(name="tiny", path="/models/tiny").resolve_path()
    '/models/tiny'

    A GGUF-backed alias names the file inside ``path``; it is dequantized once and cached as
    a safetensors model. When the folder is only known at load time (a file shipped in an
    optional package), give ``locate`` instead of ``path``: it is called when the alias is
    loaded, never when it is registered, so a missing package breaks only that alias.
    """

    name: str
    #: A local folder, a hub id, or a ``.gguf`` file; ``None`` when ``locate`` finds it.
    path: str | Path | None = None
    description: str = ""
    #: Name of a GGUF checkpoint inside ``path`` (a folder or a hub repo).
    gguf_file: str | None = None
    #: Expected sha256 of the GGUF file: any other file (truncated, altered) is refused.
    sha256: str | None = attrs.field(default=None, validator=_check_sha256)
    #: Returns ``path`` at load time; raises ``ModelLoadError`` saying how to install what
    #: is missing.
    locate: Callable[[], str | Path] | None = attrs.field(default=None, eq=False)
    #: Edit requests about facts this model knows (a CounterFact-style file: a path or a
    #: ``pkg:`` spec): where ``editmethods demo`` picks its edit when no ``--data`` is given.
    examples: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.path is None) == (self.locate is None):
            raise ValueError(f"model alias {self.name!r}: give exactly one of 'path' and 'locate'")

    def resolve_path(self) -> str:
        """``path``, or what ``locate`` returns (which may raise ``ModelLoadError``)."""
        if self.path is not None:
            return str(self.path)
        assert self.locate is not None  # checked at construction
        return str(self.locate())


@attrs.frozen
class Location:
    """Where an edit goes: layer indices and fully qualified module names."""

    layers: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    modules: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: Method-specific extra information (JSON-serializable).
    info: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Delta:
    """The change of one parameter, in that parameter's own layout.

    Either ``dense`` (same shape as the parameter) or low-rank factors with
    ``left @ right`` of the parameter's shape (a rank-one ROME edit is two vectors).
    """

    param: str
    dense: torch.Tensor | None = None
    left: torch.Tensor | None = None
    right: torch.Tensor | None = None

    def __attrs_post_init__(self) -> None:
        if (self.dense is None) == (self.left is None or self.right is None):
            raise EditError(
                f"delta for {self.param!r}: give either 'dense' or both 'left' and 'right'"
            )

    def materialize(self) -> torch.Tensor:
        """The dense change, in float32 or wider."""
        import torch

        if self.dense is not None:
            return self.dense if self.dense.dtype in (torch.float32, torch.float64) else self.dense.float()
        return self.left.float() @ self.right.float()

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for key in ("dense", "left", "right"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def is_finite(self) -> bool:
        import torch

        return all(bool(torch.isfinite(t).all()) for t in self.tensors().values())


@attrs.frozen
class Update:
    """A computed change, not yet applied.

    Weight-writing methods fill ``deltas`` and the core writes them. Methods that keep the
    weights frozen put their state in ``payload`` (tensors, saved as safetensors) and
    ``meta`` (JSON-serializable) and attach it in their own ``apply`` hook.
    """

    method: str
    deltas: tuple[Delta, ...] = attrs.field(default=(), converter=tuple)
    payload: Mapping[str, torch.Tensor] = attrs.field(factory=dict)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    #: Parameters the update depends on without writing them (e.g. the weights a LoRA
    #: adapter wraps); their hashes tie a saved edit to its base model.
    reads: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the model parameters this update writes."""
        return tuple(d.param for d in self.deltas)

    def check_finite(self) -> None:
        """Raise :class:`EditError` naming the first tensor with NaN or inf."""
        import torch

        for delta in self.deltas:
            if not delta.is_finite():
                raise EditError(
                    f"{self.method}: the computed update of {delta.param!r} contains NaN or inf; "
                    "the model was not changed (try a smaller learning rate or fewer steps)"
                )
        for key, value in self.payload.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise EditError(
                    f"{self.method}: update tensor {key!r} contains NaN or inf; "
                    "the model was not changed"
                )


def new_edit_id() -> str:
    return uuid.uuid4().hex[:12]


@attrs.frozen
class EditHandle:
    """The receipt of an applied edit: pass it to ``Editor.rollback`` or ``Editor.save_edit``."""

    edit_id: str
    method: str
    requests: tuple[EditRequest, ...] = attrs.field(converter=tuple)
    hparams: HyperParams
    location: Location
    update: Update
    #: Identifies the editor session (and so the model) this edit belongs to.
    session: str
    #: sha256 of each base tensor the edit wrote, taken before it was written.
    base_hashes: Mapping[str, str] = attrs.field(factory=dict)
    seconds: float = 0.0


@attrs.frozen
class MetricResult:
    """One measured number, labelled with the protocol that produced it."""

    name: str
    value: float
    protocol: str
    n: int
    per_case: tuple[float, ...] = attrs.field(default=(), converter=tuple)
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class EvalContext:
    """What ``evaluate`` is asked for."""

    #: Metric names to compute; empty means every metric whose inputs are present.
    metrics: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    #: Pre-edit greedy predictions (prompt -> token ids), for locality as agreement.
    pre_edit: Mapping[str, Any] = attrs.field(factory=dict)
    #: The unedited model's greedy continuations of neighbour prompts (``locality_key`` ->
    #: text), for the ``wild`` protocol's ``gen_locality``.
    pre_edit_answers: Mapping[str, str] = attrs.field(factory=dict)
    #: Token budget for batched scoring.
    batch_size: int = 32

    def wants(self, name: str) -> bool:
        return not self.metrics or name in self.metrics
