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

from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs
import yaml

from editmethods.editor import Editor
from editmethods.errors import HyperParamsError
from editmethods.hparams import HyperParams, _read, load_hparams
from editmethods.plugins import Plugins, get_plugins
from editmethods.types import EditHandle, EditRequest


@attrs.frozen
class Step:
    """One method with its hyper-parameters."""

    method: str
    hparams: HyperParams


@attrs.define
class Pipeline:
    """Runs its steps in order on a set of requests and keeps a stack of handles."""

    steps: tuple[Step, ...] = attrs.field(converter=tuple)
    handles: list[EditHandle] = attrs.field(factory=list)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, plugins: Plugins | None = None,
                  base_dir: Path | None = None, where: str = "pipeline") -> Pipeline:
        """Build a pipeline from ``{"steps": [{"method": ..., ...}, ...]}``."""
        plugins = plugins if plugins is not None else get_plugins()
        if not isinstance(doc, Mapping) or not isinstance(doc.get("steps"), list) or not doc["steps"]:
            raise HyperParamsError(f"{where}: expected a non-empty list under 'steps'")
        extra = set(doc) - {"steps"}
        if extra:
            raise HyperParamsError(f"extra fields found ({', '.join(sorted(extra))}) @ {where}")
        steps = []
        for i, raw in enumerate(doc["steps"]):
            at = f"{where}.steps[{i}]"
            if not isinstance(raw, Mapping) or "method" not in raw:
                raise HyperParamsError(f"required field missing @ {at}.method")
            raw = dict(raw)
            method = raw.pop("method")
            installed = plugins.method(method)
            data: dict[str, Any] = {}
            if "hparams_file" in raw:
                file = Path(raw.pop("hparams_file"))
                data, _ = _read(file if file.is_absolute() or base_dir is None else base_dir / file)
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
        """Load a pipeline file (YAML, loaded safely)."""
        path = Path(path)
        doc = yaml.safe_load(path.read_text())
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
