"""Pipelines: several methods applied in order, rolled back in reverse.

A pipeline file lists steps; each step is a tagged union on ``method``: the tag picks the
registered hyper-parameter class and the other keys are structured strictly into it::

    steps:
      - method: ft
        layers: [0]
        objective: target_new
      - method: lora
        rank: 4

A step may also name a file of hyper-parameters with ``hparams_file`` (resolved next to the
pipeline file); keys given inline override it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from editmethods.editor import Editor
from editmethods.errors import HyperParamsError
from editmethods.hparams import HyperParams, load_hparams, read_mapping
from editmethods.plugins import Plugins, get_plugins
from editmethods.types import EditHandle, EditRequest


@attrs.frozen
class Step:
    """One method with its hyper-parameters."""

    method: str
    hparams: HyperParams


def _step_tuple(steps: Iterable[Step]) -> tuple[Step, ...]:
    # typed, unlike a bare ``converter=tuple`` whose element type mypy cannot infer
    return tuple(steps)


@attrs.define
class Pipeline:
    """Runs its steps in order on a set of requests and keeps a stack of handles."""

    steps: tuple[Step, ...] = attrs.field(converter=_step_tuple)
    handles: list[EditHandle] = attrs.field(factory=list)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, plugins: Plugins | None = None,
                  base_dir: Path | None = None, where: str = "pipeline") -> Pipeline:
        """Build a pipeline from ``{"steps": [{"method": ..., ...}, ...]}``."""
        plugins = plugins if plugins is not None else get_plugins()
        if not isinstance(doc, Mapping) or not isinstance(doc.get("steps"), list) or not doc["steps"]:
            raise HyperParamsError(f"{where}: expected a non-empty list under 'steps': write "
                                   "'steps:' followed by one '- method: NAME' item per step")
        extra = set(doc) - {"steps"}
        if extra:
            raise HyperParamsError(f"extra fields found ({', '.join(sorted(map(str, extra)))}) "
                                   f"@ {where}: a pipeline has only 'steps'")
        steps: list[Step] = []
        for i, raw in enumerate(doc["steps"]):
            at = f"{where}.steps[{i}]"
            if not isinstance(raw, Mapping) or "method" not in raw:
                raise HyperParamsError(f"required field missing @ {at}.method: each step is a "
                                       "mapping with 'method: NAME' and its hyper-parameters")
            raw = dict(raw)
            method = raw.pop("method")
            if not isinstance(method, str):
                raise HyperParamsError(f"'method' must be a method's name (a string), got "
                                       f"{method!r} @ {at}.method: write the name, such as ft")
            installed = plugins.method(method)
            data: dict[str, Any] = {}
            if "hparams_file" in raw:
                file = raw.pop("hparams_file")
                if not isinstance(file, (str, Path)):
                    raise HyperParamsError(
                        f"'hparams_file' must be a path (a string), got {file!r} @ "
                        f"{at}.hparams_file: write the file's path, relative to {where}")
                file = Path(file)
                try:
                    data = read_mapping(file if file.is_absolute() or base_dir is None
                                        else base_dir / file)
                except HyperParamsError as exc:
                    raise HyperParamsError(f"{exc} (the hparams_file of {at})") from None
            data.update(raw)
            try:
                hp = load_hparams(installed.spec.hparams_class, data, method=method)
            except HyperParamsError as exc:
                raise HyperParamsError(str(exc).replace(" in hparams", f" in {at}")
                                       .replace("@ hparams", f"@ {at}")) from None
            steps.append(Step(method=method, hparams=hp))
        return cls(steps=steps)

    @classmethod
    def from_yaml(cls, path: str | Path, *, plugins: Plugins | None = None) -> Pipeline:
        """Load a pipeline file (YAML, loaded safely; or JSON).

        :raises HyperParamsError: naming the file and the fix when it cannot be read or is not
            a mapping (see :func:`editmethods.hparams.read_mapping`), and every problem of a
            step with its path.
        """
        path = Path(path)
        doc = read_mapping(path, what="pipeline file", example="steps: [{method: ft, lr: 0.01}]")
        return cls.from_dict(doc, plugins=plugins, base_dir=path.parent, where=path.name)

    def run(self, editor: Editor, requests: Sequence[EditRequest]) -> list[EditHandle]:
        """Apply every step to ``requests`` (as one batch where the method supports it,
        else one after another). A failing step rolls back the steps before it."""
        made: list[EditHandle] = []
        try:
            for step in self.steps:
                batch = editor.plugins.method(step.method).spec.batch
                out = editor.edit(list(requests), step.method, step.hparams,
                                  sequential=not batch and len(requests) > 1)
                made.extend(out if isinstance(out, list) else [out])
        except BaseException:
            for handle in reversed(made):
                editor.rollback(handle)
            raise
        self.handles.extend(made)
        return made

    def rollback(self, editor: Editor) -> None:
        """Undo every edit this pipeline made, newest first."""
        while self.handles:
            editor.rollback(self.handles.pop())
