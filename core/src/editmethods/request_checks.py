"""Checks of what a caller hands the editor, made before the model is touched.

:class:`~editmethods.types.EditRequest` checks its own fields when it is made; what needs
more than the request (the model's context length, the tokenizer, the installed metrics)
is checked here:

>>> from editmethods.request_checks import as_requests
>>> as_requests("The capital of France is Rome", argument="evaluate(requests=...)")
Traceback (most recent call last):
...
editmethods.errors.RequestError: evaluate(requests=...): got a str; pass EditRequest objects, e.g. EditRequest(prompt=..., subject=..., target_new=...)

Every check raises an :class:`~editmethods.errors.EditmethodsError` subclass whose message
names the argument or field and says what to give instead; none of them changes the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from editmethods.errors import ArgumentError, RequestError
from editmethods.types import EditRequest, PromptAnswer, describe_value, text_problem

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from editmethods.plugins import Plugins

__all__ = ["as_requests", "check_fits", "check_metrics", "check_prompt", "context_length",
           "metric_names"]

_HOW = "pass EditRequest objects, e.g. EditRequest(prompt=..., subject=..., target_new=...)"
#: Config attributes that hold a model's context length, in the order they are looked for.
CONTEXT_ATTRIBUTES = ("n_positions", "max_position_embeddings", "n_ctx")
#: Problems listed in one error at most (the rest are counted).
_MAX_LISTED = 5


def as_requests(requests: Any, *, argument: str) -> list[EditRequest]:
    """``requests`` as a list of :class:`EditRequest`: one request or a sequence of them.

    :param argument: how the caller names the argument in errors, e.g.
        ``"evaluate(requests=...)"``.
    :raises RequestError: for anything else (a string, a dict, ``None``, an empty sequence,
        a sequence holding something other than requests), saying how to build a request.
    """
    if isinstance(requests, EditRequest):
        return [requests]
    if isinstance(requests, (str, bytes)):
        raise RequestError(f"{argument}: got a {type(requests).__name__}; {_HOW}")
    if isinstance(requests, Mapping):
        raise RequestError(
            f"{argument}: got a {type(requests).__name__}; pass EditRequest objects: "
            "EditRequest(**fields) builds one from a dict of its fields, "
            "editmethods.evaluation.loaders.load_requests([record]) one from a dataset record"
        )
    if isinstance(requests, PromptAnswer):
        raise RequestError(f"{argument}: got a PromptAnswer (a locality or portability pair); "
                           f"{_HOW}")
    if not isinstance(requests, Iterable):
        raise RequestError(f"{argument}: got {describe_value(requests)}; {_HOW}")
    batch = list(requests)
    if not batch:
        raise RequestError(f"{argument}: no edit requests given; pass at least one EditRequest")
    for i, r in enumerate(batch):
        if not isinstance(r, EditRequest):
            raise RequestError(f"{argument}: item {i} is {describe_value(r)}, not an "
                               f"EditRequest; {_HOW}")
    return batch


def context_length(model: Any) -> tuple[int, str] | None:
    """The model's context length and the config attribute it comes from, or ``None`` when
    its config has none of :data:`CONTEXT_ATTRIBUTES` (relative positions, e.g. T5)."""
    config = getattr(model, "config", None)
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, name
    return None


def check_fits(requests: EditRequest | Sequence[EditRequest], model: torch.nn.Module,
               tokenizer: Any) -> None:
    """Refuse requests whose texts do not fit the model's context.

    Each prompt with the text it is scored or trained on (the edit prompt and each
    paraphrase with the target, each locality and portability prompt with its answer) must
    fit in the context (from ``model.config``, see :func:`context_length`; no check when the
    config has none): a longer text would be cut from the left, and a method would train on
    what is left, often without the subject. Generation prompts must leave room for one new
    token. An encoder-decoder model's prompt and target must each fit.

    :raises RequestError: listing each text that does not fit, its length in tokens, whether
        the subject would be cut off, and how long the prompt may be.
    """
    from editmethods.scoring import target_ids

    batch = as_requests(requests, argument="check_fits(requests=...)")
    found = context_length(model)
    if found is None:
        return
    limit, attr = found
    seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    problems: list[str] = []
    for index, r in enumerate(batch):
        label = f"edit request {r.case_id!r}" if r.case_id is not None else f"edit request {index}"
        texts = [("prompt + target_new", r.prompt, r.target_text, True)]
        texts += [(f"rephrase_prompts[{i}] + target_new", p, r.target_text, r.subject in p)
                  for i, p in enumerate(r.rephrase_prompts)]
        for name in ("locality", "portability"):
            texts += [(f"{name}[{i}] prompt + answer", p.prompt, " " + p.answer.strip(), False)
                      for i, p in enumerate(getattr(r, name))]
        for what, prompt, target, has_subject in texts:
            p_ids, t_ids = target_ids(tokenizer, prompt, target)
            total = max(len(p_ids), len(t_ids)) if seq2seq else len(p_ids) + len(t_ids)
            if total <= limit:
                continue
            room = limit if seq2seq else limit - len(t_ids)
            cut = ""
            if has_subject and not seq2seq:
                cut = _subject_cut(tokenizer, prompt, r.subject, total - limit)
            problems.append(
                f"{label}: {what} is {total} tokens, more than the model's context of {limit} "
                f"tokens (config.{attr}){cut}; shorten the prompt to at most {max(room, 0)} "
                "tokens"
            )
        for i, prompt in enumerate(r.generation_prompts):
            n = len(tokenizer(prompt).input_ids)
            if n >= limit:
                problems.append(
                    f"{label}: generation_prompts[{i}] is {n} tokens, which leaves no room to "
                    f"generate in the model's context of {limit} tokens (config.{attr}); "
                    f"shorten it to fewer than {limit} tokens"
                )
    if problems:
        more = len(problems) - _MAX_LISTED
        raise RequestError("; ".join(problems[:_MAX_LISTED])
                           + (f"; and {more} more too long" if more > 0 else ""))


def _subject_cut(tokenizer: Any, prompt: str, subject: str, dropped: int) -> str:
    """Words for what a cut of ``dropped`` tokens from the left does to the subject."""
    from editmethods.tokens import subject_token_range

    try:
        first, _ = subject_token_range(tokenizer, prompt, subject)
    except RequestError:
        return ""
    if first < dropped:
        return (f": cut from the left to fit, it would lose its first {dropped} tokens, "
                f"and with them the subject {subject!r} (token {first})")
    return f": cut from the left to fit, it would lose its first {dropped} tokens"


def check_prompt(prompt: Any, *, argument: str) -> str:
    """``prompt`` when it is non-empty text (for ``Editor.answer`` and the like).

    :param argument: how the caller names it in errors, e.g. ``"answer(prompt=...)"``.
    :raises RequestError: for a non-string, an empty or an invisible prompt.
    """
    problem = text_problem(prompt, argument,
                           "pass the prompt as text, e.g. 'The capital of France is'")
    if problem:
        raise RequestError(problem)
    return prompt


def metric_names(plugins: Plugins) -> tuple[str, ...] | None:
    """The metric names that the registered metric plugins compute (``fnmatch`` patterns
    such as ``locality_*`` included), from each plugin's ``METRIC_NAMES``; ``None`` when
    a plugin implementing ``evaluate`` declares none (then any name may be computed)."""
    names: list[str] = []
    for impl in plugins.pm.hook.evaluate.get_hookimpls():
        declared = getattr(impl.plugin, "METRIC_NAMES", None)
        if declared is None:
            return None
        names.extend(declared)
    return tuple(dict.fromkeys(names))


def check_metrics(metrics: Any, plugins: Plugins | None = None, *,
                  argument: str = "metrics") -> list[str] | None:
    """``metrics`` as a list of names, refusing names that no metric plugin computes.

    ``None`` (every metric) stays ``None``.

    :param plugins: whose metric plugins count; the process-wide ones by default.
    :param argument: how the caller names the argument in errors (``"--metrics"``).
    :raises ArgumentError: for a string instead of a list, a name that is not a string, or
        an unknown name (the message lists the known ones).
    """
    if metrics is None:
        return None
    if isinstance(metrics, (str, bytes)):
        raise ArgumentError(f"{argument}: got a {type(metrics).__name__} {metrics!r}; pass a "
                            f"list of metric names, e.g. ['reliability', 'locality']")
    if not isinstance(metrics, Iterable) or isinstance(metrics, Mapping):
        raise ArgumentError(f"{argument}: got {describe_value(metrics)}; pass a list of metric "
                            "names, e.g. ['reliability', 'locality']")
    names = list(metrics)
    for name in names:
        if not isinstance(name, str):
            raise ArgumentError(f"{argument}: metric names must be str, got "
                                f"{describe_value(name)}")
    if plugins is None:
        from editmethods.plugins import get_plugins

        plugins = get_plugins()
    known = metric_names(plugins)
    if known is None:
        return names
    unknown = [n for n in names if not any(fnmatchcase(n, k) for k in known)]
    if unknown:
        raise ArgumentError(
            f"{argument}: unknown metric{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; known metrics: {', '.join(known)}"
        )
    return names
