"""Hyper-parameters: frozen attrs classes loaded strictly by cattrs from YAML or JSON.

Every problem in a file is reported at once, each with its path::

    extra fields found (kl_factr) @ rome.yaml
    'v_lr' must be > 0: -1.0 @ rome.yaml.v_lr
    'mom2_adjustment' must be a boolean (true or false), got the string 'false': write false
    without quotes @ rome.yaml.mom2_adjustment

Values are checked, never coerced: a ``bool`` field takes only true or false, an ``int`` field
a whole number (not ``2.7``, not ``3.0``, not ``true``), a ``float`` field a number, a ``str``
field a string, and a list field a YAML list whose items obey the same rules (never a string,
which would be split into characters). ``Optional``, unions, ``Literal`` and nested attrs
classes are checked the same way.

Files are read with :func:`read_mapping`: YAML through ``yaml.SafeLoader`` (plain values only,
never Python objects) or JSON; a file that cannot be read, is not UTF-8, is not valid YAML/JSON,
is empty, or holds something other than a mapping raises :class:`HyperParamsError` naming the
file and the fix.

Keys that set runtime, not method behaviour (``device``, ``model_name``, ``stats_dir``, ...,
as found in EasyEdit's files), are not hyper-parameters: they are dropped with a warning that
says where they belong. ``alg_name`` must name the method being loaded.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import types
import warnings
from collections import abc
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, overload

import attrs
import cattrs
import yaml
from cattrs.errors import (
    BaseValidationError,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.v import format_exception

from editmethods.errors import HyperParamsError

#: Keys found in other tools' hparams files that configure the run, not the method.
RUNTIME_KEYS: Mapping[str, str] = {
    "device": "pass device= to Editor.from_pretrained",
    "model_name": "pass the model to Editor.from_pretrained",
    "model_parallel": "place the model yourself before creating the Editor",
    "fp16": "pass dtype= to Editor.from_pretrained",
    "bf16": "pass dtype= to Editor.from_pretrained",
    "stats_dir": "set EDITMETHODS_CACHE or the stats cache_dir",
    "results_dir": "pass an output path to the CLI",
    "archive": "pass the checkpoint path to the method's trainer or loader",
    "tokenizer_name": "pass the tokenizer to the Editor",
    "tokenizer_class": "pass the tokenizer to the Editor",
    "model_class": "pass the model to the Editor",
    # Module paths of the architecture: ours come from config.model_type (declare an unknown
    # architecture with editmethods.Architecture); only the edited module is a hyper-parameter.
    "layer_module_tmp": "module paths come from the model's architecture",
    "mlp_module_tmp": "module paths come from the model's architecture",
    "attn_module_tmp": "module paths come from the model's architecture",
    "ln_f_module": "module paths come from the model's architecture",
    "lm_head_module": "module paths come from the model's architecture",
}

H = TypeVar("H", bound="HyperParams")


@attrs.frozen
class HyperParams:
    """Base class of every method's hyper-parameters.

    Subclasses are frozen attrs classes; use ``attrs.evolve(hp, field=value)`` for a
    modified copy. Subclasses may set ``_aliases`` (other tools' key -> our key) for keys
    that mean the same thing under another name.
    """

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML-serializable form (the inverse of :func:`load_hparams`)."""
        return converter.unstructure(self)


# -- how values are shown in messages ---------------------------------------------------------
def _show(value: Any, limit: int = 60) -> str:
    """``value`` as it would be written in YAML (flow style), shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = _float_text(value)
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, Mapping):
        pairs = (f"{_show(k, limit)}: {_show(v, limit)}" for k, v in value.items())
        text = "{" + ", ".join(pairs) + "}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _float_text(value: float) -> str:
    """A float as YAML 1.1 and 1.2 both read it as a float (``5.0e-04``, not ``5e-4``)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def _found(value: Any) -> str:
    """What a value is, for "got ...": its kind and its value."""
    if isinstance(value, bool):
        return f"the boolean {_show(value)}"
    if value is None:
        return "null (no value)"
    if isinstance(value, int):
        return f"the integer {_show(value)}"
    if isinstance(value, float):
        return f"the float {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, (list, tuple)):
        return f"a list {_show(value)}"
    if isinstance(value, Mapping):
        return f"a mapping {_show(value)}"
    return f"a {type(value).__name__} {_show(value)}"


_NOUNS: dict[Any, tuple[str, str]] = {
    bool: ("a boolean (true or false)", "booleans"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}
_EXAMPLES: dict[Any, str] = {bool: "true", int: "1", float: "0.5", str: "'text'"}


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_sequence(tp: Any) -> bool:
    return tp in (list, tuple) or get_origin(tp) in (list, tuple, abc.Sequence, abc.MutableSequence)


def _sequence_items(tp: Any) -> tuple[tuple[Any, ...] | None, Any]:
    """``(fixed item types, None)`` for ``tuple[int, str]``, ``(None, item type)`` otherwise."""
    args = get_args(tp)
    if (get_origin(tp) or tp) is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return args, None
    return None, (args[0] if args else Any)


def _noun(tp: Any, plural: bool = False) -> str:
    """How a type is named in messages: ``an integer``, ``a list of integers``, ..."""
    if tp in _NOUNS:
        return _NOUNS[tp][plural]
    if _is_sequence(tp):
        fixed, item = _sequence_items(tp)
        if fixed is not None:
            kinds = {_noun(t, plural=True) for t in fixed}
            inner = f"{len(fixed)} {kinds.pop()}" if len(kinds) == 1 else \
                "[" + ", ".join(_noun(t) for t in fixed) + "]"
        else:
            inner = "values" if item is Any else _noun(item, plural=True)
        return f"lists of {inner}" if plural else f"a list of {inner}"
    if get_origin(tp) is Literal:
        choices = ", ".join(_show(c) for c in get_args(tp))
        return f"values among {choices}" if plural else f"one of {choices}"
    if _is_union(tp):
        members = [m for m in get_args(tp) if m is not type(None)]
        nouns = [_noun(m, plural) for m in members]
        if len(members) < len(get_args(tp)):
            nouns.append("nulls" if plural else "null")
        return " or ".join(nouns)
    if attrs.has(tp):
        return f"{'mappings' if plural else 'a mapping'} of {tp.__name__}'s fields"
    if tp is Any:
        return "values" if plural else "any value"
    name = getattr(tp, "__name__", repr(tp))
    return f"{name} values" if plural else f"a {name}"


def _example(tp: Any) -> str:
    """A value of type ``tp`` written in YAML, for "write ... such as ...". """
    if tp in _EXAMPLES:
        return _EXAMPLES[tp]
    if _is_sequence(tp):
        fixed, item = _sequence_items(tp)
        items = [_example(t) for t in fixed] if fixed is not None else [_example(item)] * 2
        return "[" + ", ".join(items) + "]"
    if get_origin(tp) is Literal:
        return _show(get_args(tp)[0])
    if _is_union(tp):
        members = [m for m in get_args(tp) if m is not type(None)]
        return _example(members[0]) if members else "null"
    return "..."


# -- strict structure hooks -------------------------------------------------------------------
class _Refused(ValueError):
    """A value of the wrong kind; its message is completed with the key once the path is known."""

    def __init__(self, expected: str, value: Any, fix: str) -> None:
        self.expected, self.value, self.fix = expected, value, fix
        super().__init__(self.describe(None))

    def describe(self, key: str | None) -> str:
        subject = f"{key!r} must be" if key else "must be"
        return f"{subject} {self.expected}, got {_found(self.value)}: {self.fix}"


def _number_in(text: str) -> int | float | None:
    """The finite number a string spells (``'45'``, ``'5e-4'``), else ``None``."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _one_item(value: Any) -> Any:
    """The item of a one-item list of numbers, or ``None``."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (int, float)) \
            and not isinstance(value[0], bool):
        return value[0]
    return None


_BOOL_WORDS = {"true": "true", "yes": "true", "on": "true",
               "false": "false", "no": "false", "off": "false"}


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        fix = f"write {_BOOL_WORDS[value.strip().lower()]} without quotes"
    elif isinstance(value, (int, float)) and value in (0, 1):
        fix = f"write {'true' if value else 'false'} (a boolean, not a number)"
    elif value is None:
        fix = "write true or false, or remove the key for the default"
    else:
        fix = "write true or false, without quotes"
    raise _Refused("a boolean (true or false)", value, fix)


def _structure_int(value: Any, tp: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if tp is int else tp(value)
    if isinstance(value, bool):
        fix = "write a whole number: true and false are not numbers"
    elif isinstance(value, float):
        if value.is_integer():
            fix = f"write {int(value)}"
        elif math.isfinite(value):
            fix = f"write a whole number, such as {math.floor(value)} or {math.ceil(value)}"
        else:
            fix = "write a whole number"
    elif isinstance(value, str):
        number = _number_in(value)
        if number is not None and float(number).is_integer():
            fix = f"write {int(number)} without quotes"
        else:
            fix = "write a whole number, without quotes"
    elif _one_item(value) is not None:
        fix = f"write {_show(_one_item(value))}, not a list"
    elif value is None:
        fix = "write a whole number, or remove the key for the default"
    else:
        fix = "write one whole number, such as 1"
    raise _Refused("an integer", value, fix)


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool):
        fix = "write a number: true and false are not numbers"
    elif isinstance(value, str):
        number = _number_in(value)
        fix = (f"write {_float_text(float(number)) if isinstance(number, float) else number} "
               "without quotes" if number is not None else
               "write a number, such as 0.5, without quotes")
    elif _one_item(value) is not None:
        fix = f"write {_show(_one_item(value))}, not a list"
    elif value is None:
        fix = "write a number, or remove the key for the default"
    else:
        fix = "write one number, such as 0.5"
    raise _Refused("a number", value, fix)


def _structure_str(value: Any, tp: Any) -> str:
    if isinstance(value, str):
        return value if tp is str else tp(value)
    if isinstance(value, bool):
        fix = ("put the word in quotes (unquoted, YAML reads true/false/yes/no/on/off as a "
               f"boolean), such as '{_show(value)}'")
    elif isinstance(value, (int, float)):
        fix = f"put it in quotes: '{_show(value)}'"
    elif isinstance(value, (list, tuple)):
        fix = "write one string, not a list"
    elif value is None:
        fix = "write a string in quotes, or remove the key for the default"
    else:
        fix = "write one string, in quotes"
    raise _Refused("a string", value, fix)


def _list_suggestion(tp: Any, text: str) -> str | None:
    """``[4, 5]`` for the string ``'4, 5'`` read as a list of ``tp``'s items, if it fits."""
    fixed, item = _sequence_items(tp)
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    pieces = [p.strip().strip("'\"") for p in body.split(",")] if body.strip() else []
    kinds = fixed if fixed is not None else [item] * len(pieces)
    if fixed is not None and len(pieces) != len(fixed):
        return None
    items: list[str | int | float] = []
    for piece, kind in zip(pieces, kinds):
        number = _number_in(piece)
        if kind is str:
            items.append(piece)
        elif kind is int and isinstance(number, int):
            items.append(number)
        elif kind is float and number is not None:
            items.append(float(number))
        else:
            return None
    return _show(items, limit=200)


def _sequence_hook(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    fixed, item = _sequence_items(tp)
    make = list if (get_origin(tp) or tp) in (list, abc.MutableSequence) else tuple
    expected = _noun(tp)

    def refuse(value: Any) -> None:
        if isinstance(value, str):
            suggestion = _list_suggestion(tp, value)
            fix = (f"write {suggestion} without quotes (a YAML list)" if suggestion else
                   f"write a YAML list, such as {_example(tp)}, without quotes")
        elif isinstance(value, Mapping):
            fix = f"write a YAML list, such as {_example(tp)}, not a mapping"
        elif value is None:
            fix = ("write [] for no items, or remove the key for the default" if fixed is None
                   else f"write a list of {len(fixed)} items, or remove the key for the default")
        else:
            try:
                one = conv.structure(value, fixed[0] if fixed else item)
            except Exception:  # noqa: BLE001 - not an item either
                one = None
            fix = (f"write [{_show(value)}] (a list, even of one item)"
                   if one is not None and fixed is None else
                   f"write a YAML list, such as {_example(tp)}")
        raise _Refused(expected, value, fix)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            refuse(value)
        if fixed is not None and len(value) != len(fixed):
            raise _Refused(expected, value,
                           f"write exactly {len(fixed)} items, such as {_example(tp)}")
        out, errors = [], []
        for i, x in enumerate(value):
            kind = fixed[i] if fixed is not None else item
            try:
                out.append(conv.structure(x, kind))
            except Exception as exc:  # noqa: BLE001 - reported with its index below
                note = IterableValidationNote(f"Structuring {tp!r} @ index {i}", i, kind)
                # PEP 678 notes, which cattrs reads on every Python; typeshed declares
                # BaseException.__notes__ from 3.11 only, and the project supports 3.10
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return make(out)

    return structure


def _literal_hook(tp: Any) -> Callable[[Any, Any], Any]:
    choices = get_args(tp)
    expected = _noun(tp)

    def structure(value: Any, _: Any) -> Any:
        for choice in choices:  # the same kind as well as equal: true is not 1
            if type(value) is type(choice) and value == choice:
                return choice
        close = [c for c in choices if isinstance(c, str) and isinstance(value, str)
                 and c.lower() == value.strip().lower()]
        if close:
            fix = f"write {_show(close[0])} (spelled exactly)"
        elif not isinstance(value, str) and any(isinstance(c, str) for c in choices):
            fix = f"write one of them, as a string: {', '.join(_show(c) for c in choices)}"
        else:
            fix = f"write one of {', '.join(_show(c) for c in choices)}"
        raise _Refused(expected, value, fix)

    return structure


def _same_kind(value: Any, tp: Any) -> bool:
    return tp in _NOUNS and type(value) is tp


def _union_hook(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = get_args(tp)
    members = [m for m in args if m is not type(None)]
    optional = len(members) < len(args)
    expected = _noun(tp)

    def structure(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None
        if len(members) == 1:  # Optional[X]: X's own message
            return conv.structure(value, members[0])
        fixes = []
        for member in sorted(members, key=lambda m: not _same_kind(value, m)):
            try:
                return conv.structure(value, member)
            except _Refused as exc:  # try the next member; keep a precise fix ("without quotes")
                fixes.append(exc.fix)
            except Exception:  # noqa: BLE001 - try the next member
                continue
        precise = [f for f in fixes
                   if re.fullmatch(r"write \S+ (without quotes|\(spelled exactly\))", f)]
        raise _Refused(expected, value, precise[0] if precise else
                       f"write {expected}, such as {_example(tp)}")

    return structure


def _attrs_hook(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = conv.gen_structure_attrs_fromdict(tp)

    def structure(value: Any, cl: Any) -> Any:
        if not isinstance(value, Mapping):
            names = ", ".join(f.name for f in attrs.fields(tp))
            raise _Refused(_noun(tp), value,
                           f"write its fields as 'key: value' lines indented under it ({names})")
        return inner(value, cl)

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    # Tuples are written as lists in YAML/JSON.
    conv.register_unstructure_hook(tuple, list)
    # Checked, never coerced (the default hooks call bool(), int(), float(), str(), tuple()).
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook_factory(_is_sequence, _sequence_hook)
    conv.register_structure_hook_factory(lambda t: get_origin(t) is Literal, _literal_hook)
    conv.register_structure_hook_factory(_is_union, _union_hook)
    conv.register_structure_hook_factory(attrs.has, _attrs_hook)
    return conv


#: The strict converter used for every hyper-parameter class.
converter = _make_converter()


@overload
def tuple_of(kind: type, *, optional: Literal[False] = False) -> Callable[[Any], tuple]: ...


@overload
def tuple_of(kind: type, *, optional: bool) -> Callable[[Any], tuple | None]: ...


def tuple_of(kind: type, *, optional: bool = False) -> Callable[[Any], tuple | None]:
    """An attrs ``converter=`` for a field holding a tuple of ``kind`` (``int``, ``float``,
    ``str`` or ``bool``) that refuses what ``tuple`` would coerce: a string (split into its
    characters), a mapping, items of another kind (``True`` is no ``int``, ``'5'`` no
    ``int``). Files are checked by the loader before; this guards construction in Python.

    >>> tuple_of(int)([4, 5])
    (4, 5)
    >>> tuple_of(int)("45")
    Traceback (most recent call last):
    ...
    TypeError: expected a list of integers, got the string '45': write [45] (a list)
    """

    def ok(x: Any) -> bool:
        if kind is bool:
            return isinstance(x, bool)
        if kind is int:
            return isinstance(x, numbers.Integral) and not isinstance(x, bool)
        if kind is float:
            return isinstance(x, numbers.Real) and not isinstance(x, bool)
        return isinstance(x, kind)

    what = f"a list of {_noun(kind, plural=True)}"

    def convert(value: Any) -> tuple | None:
        if value is None and optional:
            return None
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            # ``tuple[kind, ...]`` built at run time (mypy would read the subscript as an
            # annotation with a variable in it)
            suggestion = (_list_suggestion(types.GenericAlias(tuple, (kind, ...)), value)
                          if isinstance(value, str) else None)
            fix = f"write {suggestion} (a list)" if suggestion else "pass a list or tuple"
            raise TypeError(f"expected {what}, got {_found(value)}: {fix}")
        items = tuple(value)
        bad = [x for x in items if not ok(x)]
        if bad:
            raise TypeError(f"expected {what}, got {_found(bad[0])} in {_show(list(items))}")
        if kind in (int, float):
            items = tuple(kind(x) for x in items)
        return items

    return convert


# -- reading files ----------------------------------------------------------------------------
#: YAML 1.2 (and JSON) floats that YAML 1.1 reads as strings: ``5e-4``, ``1E5`` (no dot, or no
#: sign in the exponent). EasyEdit's files write ``lr: 5e-4``.
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain values only, never Python objects) with two changes: a float
    in exponent form without a dot (``5e-4``) is a float, as in YAML 1.2 and JSON, not the
    string YAML 1.1 makes of it; a key given twice in one mapping is an error (YAML keeps the
    last silently)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"found the key {key_node.value!r} twice",
                            key_node.start_mark)
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as "what (line L, column C): fix"."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return (f"the character {char!r} (offset {exc.position}) is not allowed in YAML: remove "
                "it (a hyper-parameter file is plain text)")
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and isinstance(exc, yaml.MarkedYAMLError) and "tag" not in problem:
        problem = f"{context}, {problem}"  # "while scanning a quoted scalar, found ..."
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    tag = re.search(r"constructor for the tag '([^']*)'", problem)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return (f"the tag {name!r}{where} is not allowed: hyper-parameters are read as plain "
                "values (yaml.SafeLoader), never as Python objects: remove the tag and write "
                "a plain value")
    if "found the key" in problem:
        return f"{problem}{where}: keep one of them"
    if "'\\t'" in problem:  # "found character '\\t' that cannot start any token"
        return f"{problem}{where}: indent with spaces, not tabs"
    if "another document" in problem:
        return f"{problem}{where}: keep one document (remove the extra '---')"
    return (f"{problem}{where}: fix the syntax there (indent with spaces, put ': ' after each "
            "key, close every quote and bracket)")


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"found the key {key!r} twice: keep one of them")
        out[key] = value
    return out


def read_mapping(source: str | Path, *, what: str = "hyper-parameter file",
                 example: str = "lr: 0.1") -> dict[str, Any]:
    """Read a YAML (``yaml.SafeLoader``) or JSON (by the ``.json`` suffix) file that must hold
    a mapping of names to values at its top level.

    :param what: what the file is, for messages (``"pipeline file"``).
    :param example: a line of such a file, shown in the fix for an empty file or a non-mapping.
    :raises HyperParamsError: naming the file and the fix, when the file is missing, a folder,
        unreadable, not UTF-8, not valid YAML/JSON (a ``!!python/...`` tag included), empty,
        or holds a list or a scalar instead of a mapping, or a key that is not a string.
    """
    path = Path(source)
    if not path.exists():
        raise HyperParamsError(f"{what} not found: {path}: check the path "
                               f"(a relative path is relative to {Path.cwd()})")
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir()
                        if p.suffix.lower() in (".yaml", ".yml", ".json"))
        hint = f" (it holds {', '.join(inside[:5])})" if inside else ""
        raise HyperParamsError(f"{path} is a folder, not a {what}: pass the path of a .yaml or "
                               f".json file{hint}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HyperParamsError(f"cannot read the {what} {path}: {exc.strerror or exc}: check "
                               "that it is a readable file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HyperParamsError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                               f"{exc.start}): save the {what} as UTF-8") from None
    if not text.strip():
        raise HyperParamsError(f"{path}: the {what} is empty: write one 'key: value' per line "
                               f"(such as '{example}')")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            raise HyperParamsError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, "
                                   f"column {exc.colno}): fix the syntax there (double quotes "
                                   "around keys and strings, no trailing commas)") from None
        except ValueError as exc:
            raise HyperParamsError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise HyperParamsError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        raise HyperParamsError(f"{path}: the {what} is empty (only comments): write one "
                               f"'key: value' per line (such as '{example}')")
    if not isinstance(data, dict):
        raise HyperParamsError(f"{path}: expected a mapping of keys to values at the top level, "
                               f"got {_found(data)}: write one 'key: value' per line (such as "
                               f"'{example}')")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise HyperParamsError(f"{path}: {_key_problem(bad[0])}")
    return data


def parse_value(text: str) -> Any:
    """One YAML value as :func:`read_mapping` reads it (``1e-3`` is a float, ``[4, 5]`` a
    list, ``false`` a bool): for values given on a command line (``--grid lr=1e-3``).

    :raises HyperParamsError: the text is not valid YAML (a ``!!python/...`` tag included).
    """
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise HyperParamsError(f"{text!r} is not a valid value: {_yaml_problem(exc)}") from None


def _key_problem(key: Any) -> str:
    return (f"the key {_show(key)} is not a name ({_found(key)}): keys are field names such as "
            f"'lr'; put it in quotes if it is one")


def _read(source: str | Path) -> tuple[dict[str, Any], str]:
    return read_mapping(source), Path(source).name


def _messages(exc: BaseException, path: str, where: str, tp: Any = None) -> list[str]:
    """Like ``cattrs.transform_error``, with our refusals worded with their key."""
    if isinstance(exc, (IterableValidationError, ClassValidationError)):
        with_notes, without = exc.group_exceptions()
        out = []
        for sub, note in with_notes:
            # an IterableValidationError's notes are IterableValidationNotes (an index),
            # a ClassValidationError's are AttributeValidationNotes (a field's name)
            sub_path = (f"{path}[{note.index!r}]" if isinstance(note, IterableValidationNote)
                        else f"{path}.{note.name}")
            out.extend(_messages(sub, sub_path, where, note.type))
        for sub in without:
            out.extend(_messages(sub, path, where))
        return out
    if isinstance(exc, _Refused):
        key = path[len(where) + 1:] if path.startswith(where + ".") else None
        return [f"{exc.describe(key)} @ {path}"]
    return [f"{format_exception(exc, tp)} @ {path}"]


def _renamed(problem: str, path: str, new_path: str, key: str, new_key: str) -> str:
    """``problem`` about ``path`` told about ``new_path`` instead (an aliased key)."""
    message, at, where = problem.rpartition(" @ ")
    if not at or not re.match(re.escape(path) + r"(\[|$)", where):
        return problem
    message = re.sub("^'" + re.escape(key) + r"(?=['\[])", "'" + new_key, message)
    return f"{message} @ {new_path}{where[len(path):]}"


def _validator_problems(cls: type, data: Mapping[str, Any], where: str) -> list[str]:
    """Run each field's attrs validator on its own, so that all range errors are reported."""
    problems = []
    for field in attrs.fields(cls):
        if field.validator is None or field.name not in data:
            continue
        try:
            value = converter.structure(data[field.name], field.type)
        except Exception:  # the type error is reported by the structuring pass
            continue
        try:
            field.validator(None, field, value)
        except (ValueError, TypeError) as exc:
            problems.append(f"{exc} @ {where}.{field.name}")
    return problems


def _prepare(
    cls: type, data: Mapping[str, Any], where: str, method: str | None,
    renamed: dict[str, str],
) -> dict[str, Any]:
    """``data`` without ``alg_name``/``method``/runtime keys, other tools' keys renamed to
    ours (recorded in ``renamed``: ours -> theirs)."""
    data = dict(data)
    alg = data.pop("alg_name", None)
    tag = data.pop("method", None)
    if tag is not None and method is not None and tag != method:
        raise HyperParamsError(f"method {tag!r} in {where} does not match {method!r}")
    if alg is not None and method is not None and str(alg).lower().replace("_", "-") != method:
        raise HyperParamsError(
            f"alg_name {alg!r} does not match method {method!r} @ {where}.alg_name: "
            f"load this file with method={str(alg).lower()!r}, or fix alg_name"
        )
    for key, hint in RUNTIME_KEYS.items():
        if key in data and key not in attrs.fields_dict(cls):
            data.pop(key)
            warnings.warn(
                f"{where}: {key!r} sets the run, not the method, and is not a hyper-parameter "
                f"({hint})",
                stacklevel=4,
            )
    for other, ours in getattr(cls, "_aliases", {}).items():
        if other in data and ours not in data:
            data[ours] = data.pop(other)
            renamed[ours] = other
    return data


def load_hparams(
    cls: type[H],
    source: H | str | Path | Mapping[str, Any] | None = None,
    *,
    method: str | None = None,
    **overrides: Any,
) -> H:
    """Load hyper-parameters of class ``cls`` from a file, a mapping, or an instance.

    :param cls: the method's hyper-parameter class.
    :param source: a ``.yaml``/``.yml``/``.json`` path, a mapping, an instance of ``cls``
        (returned as is; with ``overrides``, a copy checked like a file), or ``None`` for the
        class defaults.
    :param method: the method name, checked against an ``alg_name`` key if present.
    :param overrides: field values that replace those from ``source`` (checked as strictly).
    :raises HyperParamsError: listing every problem with its path: unknown keys, values of the
        wrong kind (never coerced: ``"false"`` is no boolean, ``2.7`` no integer, ``"45"`` no
        list), out-of-range values; or naming the file and the fix when it cannot be read
        (see :func:`read_mapping`).

    >>> import attrs
    >>> @attrs.frozen
    ... class Demo(HyperParams):
    ...     lr: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    >>> load_hparams(Demo, {"lr": 0.5})
    Demo(lr=0.5)
    >>> load_hparams(Demo, {"lr": -1.0, "lrr": 2})
    Traceback (most recent call last):
    ...
    editmethods.errors.HyperParamsError: 2 problems in hparams:
      extra fields found (lrr) @ hparams
      'lr' must be > 0: -1.0 @ hparams.lr
    """
    if isinstance(source, cls) and not overrides:
        return source
    if isinstance(source, cls):  # overrides are checked like the rest: through the converter
        data, where = converter.unstructure(source), "hparams"
    elif isinstance(source, HyperParams):
        raise HyperParamsError(
            f"expected hyper-parameters of type {cls.__name__}, got {type(source).__name__}: "
            "pass the hparams of the method you are running"
        )
    elif source is None:
        data, where = {}, "hparams"
    elif isinstance(source, (str, Path)):
        data, where = _read(source)
    elif isinstance(source, Mapping):
        data, where = dict(source), "hparams"
    else:
        raise HyperParamsError(
            f"hparams must be a path, a mapping or a {cls.__name__}, got {type(source).__name__}: "
            "pass a .yaml/.json path, a mapping of keys to values, or None for the defaults"
        )
    problems: list[str] = []
    for key in [k for k in data if not isinstance(k, str)]:
        problems.append(f"{_key_problem(key)} @ {where}")
        del data[key]
    renamed: dict[str, str] = {}
    data = _prepare(cls, data, where, method, renamed)
    data.update(overrides)
    result = None
    whole: list[str] = []  # errors of the class as a whole (checks across fields)
    try:
        result = converter.structure(data, cls)
    except BaseValidationError as exc:
        problems.extend(p for p in _messages(exc, where, where)
                        if not p.startswith("invalid value @"))
        whole = [f"{e} @ {where}" for e in exc.exceptions
                 if isinstance(e, (ValueError, TypeError))
                 and not isinstance(e, (BaseValidationError, _Refused))]
    except _Refused as exc:
        problems.append(f"{exc} @ {where}")
    except (ValueError, TypeError) as exc:
        whole = [f"{exc} @ {where}"]
    # a field validator's error is reported here, with its field's path
    problems.extend(_validator_problems(cls, data, where))
    if problems or result is None:
        if not problems:
            problems = whole or [f"could not build {cls.__name__} from the given values @ {where}"]
        for ours, other in renamed.items():  # name the key as it is written in the file
            problems = [_renamed(p, f"{where}.{ours}", f"{where}.{other}", ours, other)
                        for p in problems]
        n = len(problems)
        raise HyperParamsError(
            f"{n} problem{'s' if n > 1 else ''} in {where}:\n  " + "\n  ".join(problems)
        )
    return result


def save_hparams(hparams: HyperParams, path: str | Path) -> None:
    """Write hyper-parameters as YAML or JSON (by the file's suffix)."""
    path = Path(path)
    data = hparams.to_dict()
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(data, indent=2))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def shipped_hparams(package_file: str | Path, name: str, *, method: str) -> Path:
    """The hyper-parameter file ``name`` that a method package ships.

    Convention: a method package keeps its files (the papers' values for public models, and
    values tuned for the reference models) in ``hparams/<name>.yaml`` next to the module
    given as ``package_file`` (pass ``__file__``).

    :raises FileNotFoundError: naming the files the package does ship.
    """
    folder = Path(package_file).resolve().parent / "hparams"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        raise FileNotFoundError(f"no shipped {method} hparams for {name!r} (shipped: {known})")
    return path
