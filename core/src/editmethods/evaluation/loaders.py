"""Load knowledge-editing datasets into :class:`~editmethods.types.EditRequest` objects.

Formats, detected from the records' keys (or named with ``format=``):

``counterfact``
    CounterFact's original schema (ROME/MEMIT): ``requested_rewrite`` with a ``"{}"`` prompt,
    ``target_new``/``target_true`` (``{"str": ...}``) and ``subject``; ``paraphrase_prompts``,
    ``neighborhood_prompts`` (other subjects whose answer is ``target_true``),
    ``attribute_prompts`` (other subjects whose answer is ``target_new``),
    ``generation_prompts``. Extension keys of the testbed: ``portability`` and
    ``relation_specificity``, lists of ``{"prompt", "ground_truth"}``.
``easyedit``
    EasyEdit's flat files (its CounterFact and zsRE splits): ``prompt``, ``subject``,
    ``target_new``, ``ground_truth``, ``rephrase_prompt``, ``locality_prompt``,
    ``locality_ground_truth`` (optionally ``portability_prompt``/``portability_ground_truth``).
``zsre-mend``
    zsRE in MEND's split: ``subject``, ``src``, ``alt`` (the new answer), ``answers``,
    ``rephrase``, ``loc`` (``"nq question: ..."``), ``loc_ans``.
``knowedit``
    KnowEdit's WikiData_recent, WikiData_counterfact and ZsRE records: ``subject``,
    ``prompt``, ``target_new``, optional ``ground_truth`` and ``rephrase_prompt``, and
    ``portability``/``locality`` as ``{kind: [{"prompt", "ground_truth"}]}``.
    KnowEdit's WikiBio (``text``/``labels``/``concept``) and Sanitation (``success``/
    ``locality`` question lists) records are not single-fact edit requests (no subject in a
    prompt, no one-answer target) and are refused with an error saying so.

Where the requests keep each field (``kind`` labels of :class:`PromptAnswer`):

=========================  ===========================================================
``ground_truth``           CounterFact's ``target_true``; zsRE's first of ``answers``
``rephrase_prompts``       paraphrase prompts
``locality``               ``neighborhood`` (answer = ``target_true``),
                           ``relation_specificity`` (the same subject's other relations),
                           ``attribute`` (answer = ``target_new``), ``nq`` (zsRE),
                           KnowEdit's kinds lower-cased (``forgetfulness``, ...)
``portability``            ``portability``, or KnowEdit's kinds lower-cased
``generation_prompts``     CounterFact's ``generation_prompts``
=========================  ===========================================================

>>> reqs = load_requests([{"prompt": "The capital of France is", "subject": "France",
...     "target_new": "Rome", "ground_truth": "Paris", "rephrase_prompt": "France's capital is",
...     "locality_prompt": "The capital of Spain is", "locality_ground_truth": "Madrid"}])
>>> reqs[0].locality[0].kind
'neighborhood'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from editmethods.errors import ArgumentError, RequestError
from editmethods.types import EditRequest, PromptAnswer, describe_value

FORMATS = ("counterfact", "easyedit", "zsre-mend", "knowedit")
#: KnowEdit shapes that do not describe a single-fact edit (see the module docs).
UNSUPPORTED = {
    "knowedit-wikibio": "KnowEdit WikiBio records (text/labels/concept) edit a whole passage, "
                        "not one fact given by a subject in a prompt",
    "knowedit-sanitation": "KnowEdit Sanitation records (question lists with 'I don't know.' "
                           "targets) have no subject to edit and no single prompt",
}


class DatasetError(RequestError):
    """A dataset file or record that cannot be read as edit requests."""


def _where(index: int, record: Any) -> str:
    case = record.get("case_id") if isinstance(record, Mapping) else None
    return f"record {index}" + (f" (case_id {case})" if case is not None else "")


def detect_format(record: Mapping[str, Any]) -> str:
    """The format of one record (see :data:`FORMATS`), or a name in :data:`UNSUPPORTED`.

    :raises DatasetError: when the keys match no known format.
    """
    if not isinstance(record, Mapping):
        raise DatasetError(f"expected a JSON object per record, got {type(record).__name__}")
    keys = set(record)
    if "requested_rewrite" in keys:
        return "counterfact"
    if {"src", "alt", "loc"} <= keys or {"src", "alt", "loc_ans"} <= keys:
        return "zsre-mend"
    if {"text", "labels", "concept"} <= keys:
        return "knowedit-wikibio"
    if "success" in keys and isinstance(record.get("success"), list):
        return "knowedit-sanitation"
    if isinstance(record.get("locality"), Mapping) or isinstance(record.get("portability"), Mapping):
        return "knowedit"
    if "prompt" in keys and ("locality_prompt" in keys or "rephrase_prompt" in keys
                             or "target_new" in keys):
        return "easyedit"
    raise DatasetError(
        f"unrecognized record keys ({', '.join(sorted(keys))}): expected one of "
        f"{', '.join(FORMATS)} (see editmethods.evaluation.loaders); pass format= to name it"
    )


def resolve_data_path(spec: str | Path) -> Path:
    """A data file's path; ``pkg:PACKAGE/relative/path`` names a file inside an installed
    package (e.g. ``pkg:editmethods_testbed/data/test.json``), found without importing it."""
    text = str(spec)
    if not text.startswith("pkg:"):
        return Path(text)
    import importlib.util

    package, _, rest = text[4:].partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise DatasetError(f"{text}: package {package!r} is not installed (pip install "
                           f"{package.replace('_', '-')}) or pass a path to a data file")
    return Path(list(found.submodule_search_locations)[0]) / rest


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON list, a JSON-lines file, or a JSON object of named records.

    A JSON object whose values are records or lists of records (KnowEdit's sample file keys
    one record per subset) gives its values in order, each with ``case_id`` set to its key
    when it has none.
    """
    path = resolve_data_path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a data file: give a .json or .jsonl file "
                           "(a JSON list of records, or one record per line)")
    if not path.is_file():
        raise DatasetError(f"{path}: no such data file; give the path of a .json or .jsonl file "
                           "(or pkg:PACKAGE/path for a file inside an installed package)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): give a "
                           "JSON or JSON-lines file in UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc}): check its "
                           "permissions") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: neither JSON nor JSON lines: {exc}") from None
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):  # a JSON object
        if all(isinstance(v, (Mapping, list)) for v in doc.values()) and not _looks_like_record(doc):
            out: list[dict[str, Any]] = []
            for key, value in doc.items():
                for rec in value if isinstance(value, list) else [value]:
                    if isinstance(rec, Mapping) and "case_id" not in rec:
                        rec = {**rec, "case_id": key}
                    out.append(rec)
            return out
        return [doc]
    raise DatasetError(f"{path}: expected a JSON list of records, got a JSON {_json_type(doc)}")


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (``object``, ``array``, ``string``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((Mapping, "object"), (list, "array"), (str, "string"),
                       ((int, float), "number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _shape(record: Mapping[str, Any]) -> str | None:
    try:
        return detect_format(record)
    except DatasetError:
        return None


def _looks_like_record(doc: Mapping[str, Any]) -> bool:
    try:
        detect_format(doc)
        return True
    except DatasetError:
        return False


def load_requests(
    source: str | Path | Sequence[Mapping[str, Any]],
    *,
    format: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    on_error: str = "raise",
) -> list[EditRequest]:
    """Read edit requests from a data file (or already-parsed records).

    :param source: a path (JSON list, JSON lines, or a JSON object of named records) or a
        list of records.
    :param format: one of :data:`FORMATS`; detected from the first record when ``None``.
    :param limit: keep at most this many requests (after ``offset``).
    :param offset: skip this many records first.
    :param on_error: ``"raise"`` (default) or ``"skip"`` records that cannot be read
        (``"skip"`` still raises when no record can be read).
    :raises DatasetError: naming the record (index and ``case_id``) and the field.
    """
    if on_error not in ("raise", "skip"):
        raise ArgumentError(f"load_requests(on_error={on_error!r}): use 'raise' or 'skip'")
    for name, value, least in (("limit", limit, 1), ("offset", offset, 0)):
        if value is None and name == "limit":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ArgumentError(
                f"load_requests({name}={value!r}): {name} must be an int >= {least}"
                + (" (or None for every record)" if name == "limit" else "")
            )
    if format is not None and not isinstance(format, str):
        raise ArgumentError(f"load_requests(format=...): must be a str, got "
                            f"{describe_value(format)}; one of {', '.join(FORMATS)}")
    where_file = f"{source}: " if isinstance(source, (str, Path)) else ""
    if isinstance(source, Mapping):
        raise ArgumentError("load_requests(source=...): got one record (a dict); pass a list of "
                            "records ([record]) or the path of a data file")
    if not isinstance(source, (str, Path)) and not isinstance(source, Iterable):
        raise ArgumentError(f"load_requests(source=...): got {describe_value(source)}; pass the "
                            "path of a data file or a list of records")
    records = read_records(source) if isinstance(source, (str, Path)) else list(source)
    if not records:
        raise DatasetError(f"{where_file}no records")
    if offset >= len(records):
        raise DatasetError(f"{where_file}offset {offset} skips every record: the data has "
                           f"{len(records)}; give an offset below {len(records)}")
    detected = format is None
    if format is None:
        format = detect_format(records[0])
    if format in UNSUPPORTED:
        raise DatasetError(f"{where_file}{UNSUPPORTED[format]}; they cannot be loaded as edit requests")
    if format not in PARSERS:
        raise DatasetError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    parse = PARSERS[format]
    out: list[EditRequest] = []
    errors: list[str] = []
    for index in range(offset, len(records)):
        if limit is not None and len(out) >= limit:
            break
        record = records[index]
        try:
            if not isinstance(record, Mapping):
                raise DatasetError(f"expected a JSON object, got {type(record).__name__}")
            shape = _shape(record) if detected else None
            if shape is not None and shape in UNSUPPORTED:
                PARSERS[shape](record, index)  # raises, saying why
            out.append(parse(record, index))
        except RequestError as exc:
            message = str(exc)
            if not message.startswith("record "):
                message = f"{_where(index, record)} ({format}): {message}"
            if on_error == "raise":
                raise DatasetError(where_file + message) from None
            errors.append(message)
    if not out:
        raise DatasetError(where_file + ("no record could be read: " + errors[0] if errors else "no records"))
    return out


# -- field access ---------------------------------------------------------------------------
class _Fields:
    """Reads fields of one record, with errors that name the record and the field."""

    def __init__(self, record: Mapping[str, Any], index: int, fmt: str) -> None:
        self.record, self.index, self.fmt = record, index, fmt

    def fail(self, field: str, problem: str) -> DatasetError:
        return DatasetError(f"{_where(self.index, self.record)} ({self.fmt}): field {field!r} {problem}")

    def get(self, path: str, *, required: bool = True, default: Any = None) -> Any:
        node: Any = self.record
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if required:
                    raise self.fail(path, "is missing")
                return default
            node = node[part]
        return node

    @overload
    def text(self, path: str, *, required: Literal[True] = ...) -> str: ...
    @overload
    def text(self, path: str, *, required: bool) -> str | None: ...

    def text(self, path: str, *, required: bool = True) -> str | None:
        """The text at ``path``; ``None`` only when not ``required`` and it is absent or empty."""
        value = self.get(path, required=required)
        if value is None and not required:
            return None
        found = value
        if isinstance(value, Mapping) and "str" in value:  # CounterFact's {"str", "id"}
            value = value["str"]
        while isinstance(value, list) and value:  # one answer of several: the first
            value = value[0]
            if isinstance(value, Mapping) and "str" in value:
                value = value["str"]
        if not isinstance(value, str):
            if value in (None, []) and not required:
                return None
            expected = "a string (or a list of strings, or {'str': ...})"
            raise self.fail(path, f"must be {expected}, got {describe_value(found)}")
        if not value.strip():
            if not required:
                return None
            raise self.fail(path, f"is empty: give a non-empty string, got {found!r}")
        return value

    def strings(self, path: str) -> list[str]:
        value = self.get(path, required=False, default=None)
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of strings, got {describe_value(value)}")
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise self.fail(f"{path}[{i}]", f"must be a string, got {describe_value(v)}")
        return [v.rstrip() for v in value if v.strip()]

    def pairs(self, path: str, kind: str, *, prompt_key: str = "prompt",
              answer_key: str = "ground_truth") -> list[PromptAnswer]:
        value = self.get(path, required=False, default=None)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of {{{prompt_key!r}, {answer_key!r}}} objects, "
                                  f"got {describe_value(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self.fail(f"{path}[{i}]", f"must be an object {{{prompt_key!r}, "
                                                f"{answer_key!r}}}, got {describe_value(item)}")
            missing = [k for k in (prompt_key, answer_key) if k not in item]
            if missing:
                raise self.fail(f"{path}[{i}]", f"must have {prompt_key!r} and {answer_key!r}; "
                                                f"{' and '.join(map(repr, missing))} is missing")
            prompt, answer = item[prompt_key], _first_answer(item[answer_key])
            if not isinstance(prompt, str):
                raise self.fail(f"{path}[{i}].{prompt_key}",
                                f"must be a string, got {describe_value(prompt)}")
            if answer is None:
                raise self.fail(f"{path}[{i}].{answer_key}", "must be a non-empty string (or a "
                                f"list of them), got {describe_value(item[answer_key])}")
            if not prompt.strip():
                raise self.fail(f"{path}[{i}].{prompt_key}", "is empty: give the prompt's text")
            try:
                out.append(PromptAnswer(prompt=prompt.rstrip(), answer=answer, kind=kind))
            except RequestError as exc:
                raise self.fail(f"{path}[{i}]", f"is not a usable pair: {exc}") from None
        return out


def _first_answer(value: Any) -> str | None:
    """The first answer of KnowEdit's nested alias lists (``[["Berlin", "Berlin, Germany"]]``)."""
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, Mapping):
        value = value.get("str")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _request(f: _Fields, **kwargs: Any) -> EditRequest:
    try:
        return EditRequest(**kwargs)
    except RequestError as exc:
        raise DatasetError(f"{_where(f.index, f.record)} ({f.fmt}): {exc}") from None


# -- parsers --------------------------------------------------------------------------------
def parse_counterfact(record: Mapping[str, Any], index: int = 0) -> EditRequest:
    """One record of CounterFact's original schema (plus the testbed's extension keys)."""
    f = _Fields(record, index, "counterfact")
    subject = f.text("requested_rewrite.subject")
    template = f.text("requested_rewrite.prompt")
    if "{}" not in template:
        raise f.fail("requested_rewrite.prompt", f"must contain '{{}}' where the subject goes: {template!r}")
    target_true = f.text("requested_rewrite.target_true")
    target_new = f.text("requested_rewrite.target_new")
    locality = (
        [PromptAnswer(p, target_true, "neighborhood") for p in f.strings("neighborhood_prompts")]
        + f.pairs("relation_specificity", "relation_specificity")
        + [PromptAnswer(p, target_new, "attribute") for p in f.strings("attribute_prompts")]
    )
    return _request(
        f,
        prompt=template.replace("{}", subject, 1).rstrip(),
        subject=subject,
        target_new=target_new,
        ground_truth=target_true,
        rephrase_prompts=f.strings("paraphrase_prompts"),
        locality=locality,
        portability=f.pairs("portability", "portability"),
        generation_prompts=f.strings("generation_prompts"),
        case_id=record.get("case_id", index),
    )


def parse_easyedit(record: Mapping[str, Any], index: int = 0) -> EditRequest:
    """One record of EasyEdit's flat CounterFact/zsRE files."""
    f = _Fields(record, index, "easyedit")
    locality = []
    loc_prompt = f.text("locality_prompt", required=False)
    if loc_prompt is not None:
        answer = f.text("locality_ground_truth")
        kind = "nq" if loc_prompt.startswith("nq question:") else "neighborhood"
        locality.append(PromptAnswer(loc_prompt.rstrip(), answer, kind))
    portability = []
    port_prompt = f.text("portability_prompt", required=False)
    if port_prompt is not None:
        portability.append(PromptAnswer(port_prompt.rstrip(), f.text("portability_ground_truth"),
                                        "portability"))
    return _request(
        f,
        prompt=f.text("prompt").rstrip(),
        subject=f.text("subject"),
        target_new=f.text("target_new"),
        ground_truth=f.text("ground_truth", required=False),
        rephrase_prompts=f.strings("rephrase_prompt"),
        locality=locality,
        portability=portability,
        case_id=record.get("case_id", index),
    )


def parse_zsre_mend(record: Mapping[str, Any], index: int = 0) -> EditRequest:
    """One record of zsRE in MEND's split (``alt`` is the new answer)."""
    f = _Fields(record, index, "zsre-mend")
    locality = []
    if f.get("loc", required=False) is not None:
        locality.append(PromptAnswer(f.text("loc").rstrip(), f.text("loc_ans"), "nq"))
    return _request(
        f,
        prompt=f.text("src").rstrip(),
        subject=f.text("subject"),
        target_new=f.text("alt"),
        ground_truth=f.text("answers", required=False),
        rephrase_prompts=f.strings("rephrase"),
        locality=locality,
        case_id=record.get("case_id", index),
    )


def _kind_groups(f: _Fields, key: str) -> list[PromptAnswer]:
    groups = f.get(key, required=False, default=None)
    if groups is None:
        return []
    if not isinstance(groups, Mapping):
        raise f.fail(key, "must be an object {kind: [{'prompt', 'ground_truth'}]}")
    out: list[PromptAnswer] = []
    for kind, _ in groups.items():
        out.extend(f.pairs(f"{key}.{kind}", kind.lower()))
    return out


def parse_knowedit(record: Mapping[str, Any], index: int = 0) -> EditRequest:
    """One KnowEdit record of the WikiData_recent / WikiData_counterfact / ZsRE shapes."""
    f = _Fields(record, index, "knowedit")
    return _request(
        f,
        prompt=f.text("prompt").rstrip(),
        subject=f.text("subject"),
        target_new=f.text("target_new"),
        ground_truth=f.text("ground_truth", required=False),
        rephrase_prompts=f.strings("rephrase_prompt"),
        locality=_kind_groups(f, "locality"),
        portability=_kind_groups(f, "portability"),
        case_id=record.get("case_id", index),
    )


def _unsupported(fmt: str) -> Callable[[Mapping[str, Any], int], EditRequest]:
    def parse(record: Mapping[str, Any], index: int = 0) -> EditRequest:
        raise DatasetError(f"{_where(index, record)} ({fmt}): {UNSUPPORTED[fmt]}; "
                           "it cannot be loaded as an edit request")
    return parse


def _by_record(record: Mapping[str, Any], index: int = 0) -> EditRequest:
    """Detect the format of each record on its own (for files that mix KnowEdit shapes)."""
    fmt = detect_format(record)
    return PARSERS[fmt](record, index)


PARSERS: dict[str, Callable[[Mapping[str, Any], int], EditRequest]] = {
    "counterfact": parse_counterfact,
    "easyedit": parse_easyedit,
    "zsre-mend": parse_zsre_mend,
    "knowedit": parse_knowedit,
    "knowedit-wikibio": _unsupported("knowedit-wikibio"),
    "knowedit-sanitation": _unsupported("knowedit-sanitation"),
    "auto": _by_record,
}


def load_true_facts(requests: Iterable[EditRequest]) -> list[PromptAnswer]:
    """The facts a dataset states as true (edit prompt and paraphrases with ``ground_truth``),
    e.g. to check what a model knows before editing."""
    out = []
    for r in requests:
        if r.ground_truth:
            out.append(PromptAnswer(r.prompt, r.ground_truth, "edit_prompt"))
            out.extend(PromptAnswer(p, r.ground_truth, "paraphrase") for p in r.rephrase_prompts)
    return out


__all__ = ["DatasetError", "FORMATS", "UNSUPPORTED", "detect_format", "load_requests",
           "load_true_facts", "parse_counterfact", "parse_easyedit", "parse_knowedit",
           "parse_zsre_mend", "read_records", "resolve_data_path"]
