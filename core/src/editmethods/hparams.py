"""Hyper-parameters: frozen attrs classes loaded strictly by cattrs from YAML or JSON.

Every problem in a file is reported at once, each with its path::

    extra fields found (kl_factr) @ rome.yaml
    'v_lr' must be > 0: -1.0 @ rome.yaml.v_lr

Keys that set runtime, not method behaviour (``device``, ``model_name``, ``stats_dir``, ...,
as found in EasyEdit's files), are not hyper-parameters: they are dropped with a warning that
says where they belong. ``alg_name`` must name the method being loaded.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, TypeVar

import attrs
import cattrs
import yaml

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


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    # Tuples are written as lists in YAML/JSON.
    conv.register_unstructure_hook(tuple, list)
    return conv


#: The strict converter used for every hyper-parameter class.
converter = _make_converter()


def _read(source: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(source)
    if not path.exists():
        raise HyperParamsError(f"hyper-parameter file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)  # safe: never constructs Python objects
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise HyperParamsError(f"{path.name}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HyperParamsError(f"{path.name}: expected a mapping of keys to values at the top level")
    return data, path.name


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
    cls: type, data: Mapping[str, Any], where: str, method: str | None
) -> dict[str, Any]:
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
        (returned as is, with ``overrides`` applied), or ``None`` for the class defaults.
    :param method: the method name, checked against an ``alg_name`` key if present.
    :param overrides: field values that replace those from ``source``.
    :raises HyperParamsError: listing every problem with its path.

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
    if isinstance(source, cls):
        return attrs.evolve(source, **overrides) if overrides else source
    if isinstance(source, HyperParams):
        raise HyperParamsError(
            f"expected hyper-parameters of type {cls.__name__}, got {type(source).__name__}: "
            "pass the hparams of the method you are running"
        )
    if source is None:
        data, where = {}, "hparams"
    elif isinstance(source, (str, Path)):
        data, where = _read(source)
    elif isinstance(source, Mapping):
        data, where = dict(source), "hparams"
    else:
        raise HyperParamsError(
            f"hparams must be a path, a mapping or a {cls.__name__}, got {type(source).__name__}"
        )
    data = _prepare(cls, data, where, method)
    data.update(overrides)
    problems: list[str] = []
    result = None
    whole: list[str] = []  # errors of the class as a whole (checks across fields)
    try:
        result = converter.structure(data, cls)
    except cattrs.errors.BaseValidationError as exc:
        problems.extend(
            p for p in cattrs.transform_error(exc, path=where) if not p.startswith("invalid value @")
        )
        whole = [f"{e} @ {where}" for e in exc.exceptions
                 if isinstance(e, (ValueError, TypeError))
                 and not isinstance(e, cattrs.errors.BaseValidationError)]
    except (ValueError, TypeError) as exc:
        whole = [f"{exc} @ {where}"]
    # a field validator's error is reported here, with its field's path
    problems.extend(_validator_problems(cls, data, where))
    if problems or result is None:
        if not problems:
            problems = whole or [f"could not build {cls.__name__} from the given values @ {where}"]
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
