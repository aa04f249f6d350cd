"""Typed values that travel through the edit lifecycle (all frozen attrs classes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from editmethods.errors import EditError, RequestError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from editmethods.hparams import HyperParams


#: Characters that are not text a reader sees: whitespace, control and format characters
#: (zero-width spaces and joiners, the byte-order mark, bidirectional marks), surrogates,
#: private-use and unassigned code points, and combining marks on their own.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
#: Letters and symbols that render as blanks (Hangul fillers, the blank Braille pattern).
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_visible(text: str) -> bool:
    """Whether ``text`` has at least one character a reader would see.

    >>> is_visible("Rome"), is_visible(" \\t\\n"), is_visible("\\u200b\\u2060\\ufeff")
    (True, False, False)
    """
    import unicodedata

    return any(unicodedata.category(c) not in _INVISIBLE_CATEGORIES and c not in _BLANK_CHARACTERS
               for c in text)


def describe_value(value: Any) -> str:
    """``int (5)``, ``dict ({'str': 'Rome'})``: a value's type and a short repr, for errors."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} ({text})"


def text_problem(value: Any, field: str, fix: str, *, optional: bool = False,
                 trailing_space: bool = False) -> str | None:
    """What is wrong with ``value`` as the text field ``field`` (``None`` when nothing).

    :param fix: what to give instead, e.g. ``"give the new answer, e.g. 'Rome'"``.
    :param optional: ``None`` is allowed.
    :param trailing_space: refuse trailing whitespace (prompts that a target continues).
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        return f"{field} must be a str, got {describe_value(value)}: {fix}"
    if not value.strip():
        return f"{field} is empty{' (only whitespace)' if value else ''}: {fix}"
    if not is_visible(value):
        return (f"{field} {ascii(value)} has no visible characters (only whitespace, "
                f"zero-width, format or control characters): {fix}")
    if trailing_space and value != value.rstrip():
        return (f"{field} ends with whitespace: the target is continued after a space, so "
                "remove the trailing space")
    return None


def _is_items(value: Any) -> bool:
    """Whether ``value`` is a list-like of items (not a string, bytes or a mapping)."""
    from collections.abc import Iterable

    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


def _tuple_of_str(value: Any) -> Any:
    # Lenient on purpose: what cannot be converted is kept as it is, and
    # EditRequest.__attrs_post_init__ reports it with every other problem.
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value) if _is_items(value) else value


# Converters for tuple fields, each with its element type: mypy reads a field's __init__
# argument from its converter's signature, and leaves the type variable of a bare
# ``converter=tuple`` unsolved (so that a list argument was reported as an error).
def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _float_tuple(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(values)


def _delta_tuple(values: Iterable[Delta]) -> tuple[Delta, ...]:
    return tuple(values)


def _request_tuple(values: Iterable[EditRequest]) -> tuple[EditRequest, ...]:
    return tuple(values)


def _str_frozenset(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _pair_problems(item: Any, where: str) -> list[str]:
    """What is wrong with ``item`` as a locality or portability pair."""
    if isinstance(item, PromptAnswer):
        return []  # checked when it was made
    if isinstance(item, Mapping):
        keys = set(item)
        missing, extra = {"prompt", "answer"} - keys, keys - {"prompt", "answer", "kind"}
        if missing or extra:
            found = ", ".join(repr(k) for k in sorted(map(str, keys))) or "none"
            return [f"{where} must have the keys 'prompt' and 'answer' (and optionally 'kind'), "
                    f"got keys {found}: give {{'prompt': ..., 'answer': ...}}"]
        prompt, answer, kind = item["prompt"], item["answer"], item.get("kind", "")
    elif _is_items(item) and not isinstance(item, Mapping):
        parts = tuple(item)
        if len(parts) != 2:
            return [f"{where} must be a (prompt, answer) pair, got {len(parts)} items "
                    f"{describe_value(item)}: give (prompt, answer) or PromptAnswer(prompt=..., "
                    "answer=...)"]
        (prompt, answer), kind = parts, ""
    else:
        return [f"{where} must be a (prompt, answer) pair, a {{'prompt', 'answer'}} mapping or a "
                f"PromptAnswer, got {describe_value(item)}"]
    return PromptAnswer.problems(prompt, answer, kind, where)


def _tuple_of_pairs(value: Any) -> Any:
    if value is None:
        return ()
    if not _is_items(value):
        return value  # reported by EditRequest.__attrs_post_init__
    out: list[Any] = []
    for item in value:
        if _pair_problems(item, "pair"):
            out.append(item)  # reported with its index by EditRequest.__attrs_post_init__
        elif isinstance(item, PromptAnswer):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(PromptAnswer(**item))
        else:
            prompt, answer = item
            out.append(PromptAnswer(prompt=prompt, answer=answer))
    return tuple(out)


@attrs.frozen
class PromptAnswer:
    """A prompt and the answer expected from it (locality, portability).

    The answer is continued after a space, as an edit's target is, so the prompt must not
    end with whitespace; prompt and answer must be non-empty text.
    """

    prompt: str
    answer: str
    #: What the pair measures, e.g. ``"neighborhood"`` or ``"relation_specificity"``.
    kind: str = ""

    def __attrs_post_init__(self) -> None:
        problems = self.problems(self.prompt, self.answer, self.kind, "PromptAnswer")
        if problems:
            raise RequestError("; ".join(problems))

    @staticmethod
    def problems(prompt: Any, answer: Any, kind: Any, where: str) -> list[str]:
        """What is wrong with a pair's fields, each problem naming ``where`` and the field."""
        found = [
            text_problem(prompt, f"{where}.prompt", "give the text the answer should follow",
                         trailing_space=True),
            text_problem(answer, f"{where}.answer", "give the expected answer, e.g. 'Madrid'"),
        ]
        if not isinstance(kind, str):
            found.append(f"{where}.kind must be a str, got {describe_value(kind)}: give a label "
                         "such as 'neighborhood', or leave it out")
        return [p for p in found if p]


@attrs.frozen
class EditRequest:
    """One fact to write: ``prompt`` (containing ``subject``) should continue with ``target_new``.

    >>> EditRequest(prompt="The capital of France is", subject="France", target_new="Rome")
    EditRequest(prompt='The capital of France is', subject='France', target_new='Rome', ground_truth=None, rephrase_prompts=(), locality=(), portability=(), case_id=None, generation_prompts=())

    The target is continued after a space (``" Rome"``), so prompts must not end with one.
    Every field is checked when the request is made: a :class:`RequestError` lists each
    problem with the field's name and what to give instead (a wrong type, an empty or
    invisible text, a target that is the true answer already, a subject not in the prompt).
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
        found = [
            text_problem(self.prompt, "prompt", "give the text the target should follow",
                         trailing_space=True),
            text_problem(self.target_new, "target_new", "give the new answer, e.g. 'Rome'"),
            text_problem(self.subject, "subject", "give the entity the fact is about"),
            text_problem(self.ground_truth, "ground_truth",
                         "give the true answer, or None when it is not known", optional=True),
        ]
        problems = [p for p in found if p]
        fields_ok = not problems
        if (isinstance(self.prompt, str) and isinstance(self.subject, str) and self.subject.strip()
                and self.subject not in self.prompt):
            problems.append(
                f"subject {self.subject!r} does not occur in prompt {self.prompt!r}: "
                "the subject must appear verbatim in the prompt"
            )
        if (fields_ok and self.ground_truth is not None
                and self.target_new.strip() == self.ground_truth.strip()):
            problems.append(
                f"target_new {self.target_new.strip()!r} is the same as ground_truth: an edit "
                "must change the answer; give a new target_new (or leave ground_truth None)"
            )
        problems += self._list_problems("rephrase_prompts", "paraphrases of the prompt",
                                        trailing_space=True)
        problems += self._list_problems("generation_prompts", "prompts to generate text from")
        for name in ("locality", "portability"):
            value = getattr(self, name)
            if not _is_items(value):
                problems.append(
                    f"{name} must be a list of (prompt, answer) pairs, got "
                    f"{describe_value(value)}: e.g. {name}=[('The capital of Spain is', 'Madrid')]"
                )
                continue
            for i, item in enumerate(value):
                problems += _pair_problems(item, f"{name}[{i}]")
        if self.case_id is not None and (not isinstance(self.case_id, (str, int))
                                         or isinstance(self.case_id, bool)):
            problems.append(f"case_id must be a str, an int or None, got "
                            f"{describe_value(self.case_id)}")
        if problems:
            case = self.case_id if isinstance(self.case_id, (str, int)) else None
            where = f"edit request {case!r}" if case is not None else "edit request"
            raise RequestError(f"{where}: " + "; ".join(problems))

    def _list_problems(self, name: str, what: str, *, trailing_space: bool = False) -> list[str]:
        value = getattr(self, name)
        if not isinstance(value, tuple):
            return [f"{name} must be a list of str ({what}), got {describe_value(value)}"]
        found = [text_problem(item, f"{name}[{i}]", f"give {what} as text, or leave it out",
                              trailing_space=trailing_space)
                 for i, item in enumerate(value)]
        return [p for p in found if p]

    @property
    def target_text(self) -> str:
        """The continuation that the model should produce after ``prompt``."""
        return " " + self.target_new.strip()


@attrs.frozen
class MethodSpec:
    """What a package declares about one method (see ``register_methods``)."""

    name: str
    hparams_class: type[HyperParams]
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

    layers: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    modules: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
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
        assert self.left is not None and self.right is not None  # checked at construction
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
    deltas: tuple[Delta, ...] = attrs.field(default=(), converter=_delta_tuple)
    payload: Mapping[str, torch.Tensor] = attrs.field(factory=dict)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    #: Parameters the update depends on without writing them (e.g. the weights a LoRA
    #: adapter wraps); their hashes tie a saved edit to its base model.
    reads: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

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
    requests: tuple[EditRequest, ...] = attrs.field(converter=_request_tuple)
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
    per_case: tuple[float, ...] = attrs.field(default=(), converter=_float_tuple)
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class EvalContext:
    """What ``evaluate`` is asked for."""

    #: Metric names to compute; empty means every metric whose inputs are present.
    metrics: frozenset[str] = attrs.field(default=frozenset(), converter=_str_frozenset)
    #: What metric plugins recorded on the unedited model through the ``remember_unedited``
    #: hook, by namespace: the built-in ``target`` metrics keep teacher-forced predictions
    #: on locality pairs there, the ``wild`` protocol the unedited continuations of
    #: neighbour prompts.
    unedited: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    #: Token budget for batched scoring.
    batch_size: int = 32

    def wants(self, name: str) -> bool:
        return not self.metrics or name in self.metrics
