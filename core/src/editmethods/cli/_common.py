"""Options and helpers shared by the core's evaluation commands."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from editmethods.errors import ArgumentError
from editmethods.evaluation.bench_store import clean_json


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--gguf-file``, ``--dtype`` and ``--device``: how to load ``--model``.

    The command receives ``gguf_file``, ``dtype`` and ``device``; pass them on as
    ``Editor.from_pretrained(model_name, gguf_file=gguf_file, dtype=dtype, device=device)``.
    Public as ``editmethods.cli.model_options``.
    """
    f = click.option("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")(f)
    f = click.option("--dtype", default=None,
                     help="float32, float16, bfloat16 (default: the checkpoint's; GGUF: float32)")(f)
    f = click.option("--gguf-file", default=None,
                     help="A GGUF file in the --model folder or hub repo (or a path to one); "
                          "dequantized once, then loaded from $EDITMETHODS_CACHE/models.")(f)
    return f


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--metrics", default=None,
                     help="Comma-separated metric names (default: every metric whose inputs exist).")(f)
    f = click.option("--mode", type=click.Choice(["single", "batch", "sequential"]), default=None,
                     help="single: each edit rolled back before the next (default); batch: one "
                          "edit of all cases; sequential: edits accumulate.")(f)
    f = click.option("--offset", type=click.IntRange(min=0), default=None,
                     help="Skip this many records first.")(f)
    f = click.option("-n", "--n", "n", type=click.IntRange(min=1), default=None,
                     help="Number of cases (default: all).")(f)
    f = click.option("--format", "data_format", default=None,
                     help="counterfact, easyedit, zsre-mend or knowedit (default: detected).")(f)
    f = click.option("--no-progress", is_flag=True, help="No progress bars.")(f)
    return f


def split_metrics(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def parse_metrics(text: str | None, *, option: str = "--metrics") -> list[str] | None:
    """The metric names of a comma-separated option, each one known to an installed metric
    plugin (checked before any model is loaded); ``None`` when the option is not given.

    :raises click.BadParameter: when the option names no metric at all.
    :raises ArgumentError: for an unknown name, listing the known ones.
    """
    from editmethods.request_checks import check_metrics

    if text is None:
        return None
    names = split_metrics(text)
    if not names:
        raise click.BadParameter(f"no metric names in {text!r}: give comma-separated names, "
                                 "e.g. reliability,locality", param_hint=option)
    return check_metrics(names, argument=option)


def check_writable(path: str | Path, *, option: str, folder: bool = False) -> Path:
    """``path`` when a file (or, with ``folder``, a folder) can be written there; checked
    before a command loads a model, so that a bad path fails in a second, not after the run.

    :raises ArgumentError: naming the option, what is in the way and what to give instead.
    """
    path = Path(path).expanduser()
    what = "folder" if folder else "file"
    if path.exists():
        if folder and not path.is_dir():
            raise ArgumentError(f"{option} {path}: this is a file, not a folder; give a folder")
        if not folder and path.is_dir():
            raise ArgumentError(f"{option} {path}: this is a folder; give a file name in it, "
                                f"e.g. {path / 'out.json'}")
        if not os.access(path, os.W_OK):
            raise ArgumentError(f"{option} {path}: this {what} is not writable; give a path "
                                "you can write, or change its permissions")
        return path
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ArgumentError(f"{option} {path}: {parent} is a file, so no {what} can be made "
                            "below it; give a path inside a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArgumentError(f"{option} {path}: the folder {parent} is read-only; give a path "
                            "in a folder you can write")
    return path


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(clean_json(data), indent=2, default=str, allow_nan=False)
                        + "\n")
    except OSError as exc:
        raise ArgumentError(f"cannot write {path}: {exc.strerror or exc}; give a path in a "
                            "folder you can write") from None
    return path
